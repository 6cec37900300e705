package sandbox

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Versions of the components the sandbox runs. The cache layout is keyed by them.
const (
	KubeVersion = "v1.36.3"
	EtcdVersion = "v3.6.16"
	KwokVersion = "v0.8.0"
	// The real node's runtime (see RealNodeBinaries). Debian's containerd 1.6 and runc 1.1.5 do not work
	// with kubelet 1.36.
	ContainerdVersion = "v2.4.2"
	RuncVersion       = "v1.5.2"
)

// CacheEnv overrides the default binary cache directory.
const CacheEnv = "ROLLGUARD_SANDBOX_CACHE"

// The wrapper modules cannot be named go.mod inside this package (that would make them nested modules),
// so they live under mods/ and are written out as go.mod/go.sum into a temporary build directory.
var (
	//go:embed mods/kube.mod
	kubeMod []byte
	//go:embed mods/kube.sum
	kubeSum []byte
	//go:embed mods/etcd.mod
	etcdMod []byte
	//go:embed mods/etcd.sum
	etcdSum []byte
	//go:embed mods/kwok.mod
	kwokMod []byte
	//go:embed mods/kwok.sum
	kwokSum []byte
	//go:embed mods/containerd.mod
	containerdMod []byte
	//go:embed mods/containerd.sum
	containerdSum []byte
	//go:embed mods/runc.mod
	runcMod []byte
	//go:embed mods/runc.sum
	runcSum []byte
)

// Binaries holds the paths of the executables a cluster runs.
type Binaries struct {
	Etcd              string
	APIServer         string
	ControllerManager string
	Scheduler         string
	Kwok              string
}

// buildGroup is one `go build` of one wrapper module producing one or more binaries in one cache folder.
type buildGroup struct {
	dir      string   // cache sub-folder, keyed by version
	bins     []string // binary names, in the order of pkgs
	pkgs     []string
	mod, sum []byte
	version  string
	estimate string
	tags     []string // build tags
	cgo      bool     // needs cgo (runc links libseccomp)
	ldflags  string
}

func buildGroups() []buildGroup {
	return []buildGroup{
		{
			dir:  "kube-" + KubeVersion,
			bins: []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"},
			pkgs: []string{
				"k8s.io/kubernetes/cmd/kube-apiserver",
				"k8s.io/kubernetes/cmd/kube-controller-manager",
				"k8s.io/kubernetes/cmd/kube-scheduler",
			},
			mod: kubeMod, sum: kubeSum, version: KubeVersion, estimate: "about 6 minutes on 2 cores",
		},
		{
			dir: "etcd-" + EtcdVersion, bins: []string{"etcd"}, pkgs: []string{"go.etcd.io/etcd/server/v3"},
			mod: etcdMod, sum: etcdSum, version: EtcdVersion, estimate: "about 1 minute on 2 cores",
		},
		{
			dir: "kwok-" + KwokVersion, bins: []string{"kwok"}, pkgs: []string{"sigs.k8s.io/kwok/cmd/kwok"},
			mod: kwokMod, sum: kwokSum, version: KwokVersion, estimate: "about 1 minute on 2 cores",
		},
	}
}

// CacheDir returns the binary cache directory: opts.CacheDir, else $ROLLGUARD_SANDBOX_CACHE, else
// <user cache dir>/rollguard/sandbox.
func CacheDir(opts Options) (string, error) {
	if opts.CacheDir != "" {
		return opts.CacheDir, nil
	}
	if d := os.Getenv(CacheEnv); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("sandbox: finding the user cache directory: %w (set %s)", err, CacheEnv)
	}
	return filepath.Join(d, "rollguard", "sandbox"), nil
}

// realNodeGroups are the parts of the real node (see RealNodeBinaries); built only when a real node is asked for.
func realNodeGroups() []buildGroup {
	return []buildGroup{
		{
			dir: "kubelet-" + KubeVersion, bins: []string{"kubelet"}, pkgs: []string{"k8s.io/kubernetes/cmd/kubelet"},
			mod: kubeMod, sum: kubeSum, version: KubeVersion, estimate: "about 3 minutes on 2 cores",
			// The node reports this version (kubectl get nodes; version-skew checks), as release builds do.
			ldflags: "-X k8s.io/component-base/version.gitVersion=" + KubeVersion +
				" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=36",
		},
		{
			dir:  "containerd-" + ContainerdVersion,
			bins: []string{"containerd", "containerd-shim-runc-v2"},
			pkgs: []string{"github.com/containerd/containerd/v2/cmd/containerd", "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"},
			mod:  containerdMod, sum: containerdSum, version: ContainerdVersion, estimate: "about 2 minutes on 2 cores",
		},
		{
			// The kubelet's containerd hands every pod a seccomp profile: a runc without seccomp refuses it.
			dir: "runc-" + RuncVersion, bins: []string{"runc"}, pkgs: []string{"github.com/opencontainers/runc"},
			mod: runcMod, sum: runcSum, version: RuncVersion, estimate: "under a minute; needs Debian's libseccomp-dev and pkg-config",
			tags: []string{"seccomp"}, cgo: true,
		},
	}
}

func binariesIn(cache string) Binaries {
	return Binaries{
		Etcd:              filepath.Join(cache, "etcd-"+EtcdVersion, "etcd"),
		APIServer:         filepath.Join(cache, "kube-"+KubeVersion, "kube-apiserver"),
		ControllerManager: filepath.Join(cache, "kube-"+KubeVersion, "kube-controller-manager"),
		Scheduler:         filepath.Join(cache, "kube-"+KubeVersion, "kube-scheduler"),
		Kwok:              filepath.Join(cache, "kwok-"+KwokVersion, "kwok"),
	}
}

// EnsureBinaries returns the cached binaries, building the missing ones first (unless opts.NoBuild).
// A cached file that exists but is not a usable executable is an error naming the file: it is not
// rebuilt silently, because something outside the sandbox wrote it and a rebuild costs minutes.
func EnsureBinaries(ctx context.Context, opts Options) (Binaries, error) {
	cache, err := ensureGroups(ctx, opts, buildGroups(), "build")
	if err != nil {
		return Binaries{}, err
	}
	return binariesIn(cache), nil
}

// ensureGroups builds the missing groups into the cache and returns the cache directory. buildCmd is the
// `sandbox` command that builds them, for the NoBuild error.
func ensureGroups(ctx context.Context, opts Options, groups []buildGroup, buildCmd string) (string, error) {
	cache, err := CacheDir(opts)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(cache); err == nil && !fi.IsDir() {
		return "", fmt.Errorf("sandbox: cache dir %s is not a directory; point %s (or Options.CacheDir) at a directory", cache, CacheEnv)
	}
	missing, err := missingGroups(cache, groups)
	if err != nil || len(missing) == 0 {
		return cache, err
	}
	if opts.NoBuild {
		g := missing[0]
		return "", fmt.Errorf("sandbox: %s %s is not built (missing %s); run `go run github.com/rollguard/rollguard/sandbox/cmd/sandbox %s`",
			g.bins[0], g.version, filepath.Join(cache, g.dir, g.bins[0]), buildCmd)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("sandbox: creating cache dir: %w", err)
	}
	unlock, err := lockCache(ctx, cache, progress(opts))
	if err != nil {
		return "", err
	}
	defer unlock()
	// Another process may have built them while we waited for the lock.
	if missing, err = missingGroups(cache, groups); err != nil {
		return "", err
	}
	for _, g := range missing {
		if err := build(ctx, cache, g, progress(opts)); err != nil {
			return "", err
		}
	}
	return cache, nil
}

func progress(opts Options) io.Writer {
	if opts.Progress != nil {
		return opts.Progress
	}
	return os.Stderr
}

// missingGroups returns the groups with a missing binary, or an error for a present but unusable one.
func missingGroups(cache string, groups []buildGroup) ([]buildGroup, error) {
	var missing []buildGroup
	for _, g := range groups {
		need := false
		for _, b := range g.bins {
			p := filepath.Join(cache, g.dir, b)
			ok, err := checkCachedBinary(p)
			if err != nil {
				return nil, err
			}
			if !ok {
				need = true
			}
		}
		if need {
			missing = append(missing, g)
		}
	}
	return missing, nil
}

// checkCachedBinary reports whether p is present; a present file must be an executable ELF file.
func checkCachedBinary(p string) (bool, error) {
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	unusable := func(why string) error {
		return fmt.Errorf("sandbox: cached binary %s is unusable (%s); delete it (rm -f %s) and it is rebuilt on the next run", p, why, p)
	}
	switch {
	case err != nil:
		return false, unusable(err.Error())
	case fi.IsDir():
		return false, unusable("a directory")
	case fi.Mode().Perm()&0o111 == 0:
		return false, unusable("not executable")
	case fi.Size() < 1<<20:
		return false, unusable(fmt.Sprintf("only %d bytes", fi.Size()))
	}
	f, err := os.Open(p)
	if err != nil {
		return false, unusable(err.Error())
	}
	defer f.Close()
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, []byte("\x7fELF")) {
		return false, unusable("not an ELF executable")
	}
	return true, nil
}

// lockCache takes an exclusive flock on <cache>/.lock so parallel test packages build only once.
func lockCache(ctx context.Context, cache string, out io.Writer) (func(), error) {
	p := filepath.Join(cache, ".lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sandbox: opening lock %s: %w", p, err)
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("sandbox: locking %s: %w", p, err)
		}
		if !told {
			fmt.Fprintf(out, "sandbox: another process is building the binaries; waiting for %s\n", p)
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("sandbox: waiting for build lock %s: %w", p, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// build runs `go build` for one group in a temporary module and moves the results into the cache.
func build(ctx context.Context, cache string, g buildGroup, out io.Writer) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("sandbox: the go command is needed once to build %s %s into %s: %w", strings.Join(g.bins, ", "), g.version, cache, err)
	}
	mod, err := os.MkdirTemp("", "rollguard-sandbox-build-")
	if err != nil {
		return fmt.Errorf("sandbox: creating build dir: %w", err)
	}
	defer os.RemoveAll(mod)
	// The output goes next to its final place (same file system) so the final rename is atomic:
	// an interrupted build leaves only a .tmp folder, never a half-written binary under its real name.
	if err := os.MkdirAll(filepath.Join(cache, g.dir), 0o755); err != nil {
		return fmt.Errorf("sandbox: creating %s: %w", filepath.Join(cache, g.dir), err)
	}
	tmpOut, err := os.MkdirTemp(filepath.Join(cache, g.dir), ".tmp-")
	if err != nil {
		return fmt.Errorf("sandbox: creating build output dir: %w", err)
	}
	defer os.RemoveAll(tmpOut)

	modFlag := "-mod=readonly"
	if len(bytes.TrimSpace(g.sum)) == 0 {
		modFlag = "-mod=mod" // no pinned checksums: let go fetch them (verified against sum.golang.org)
	}
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), g.mod, 0o644); err != nil {
		return fmt.Errorf("sandbox: writing go.mod: %w", err)
	}
	if err := os.WriteFile(filepath.Join(mod, "go.sum"), g.sum, 0o644); err != nil {
		return fmt.Errorf("sandbox: writing go.sum: %w", err)
	}

	// A single package is built to an explicit file name: `go build -o DIR/` names a binary after its
	// import path, and go.etcd.io/etcd/server/v3 would come out as "server", not "etcd".
	dest := tmpOut + string(os.PathSeparator)
	if len(g.pkgs) == 1 {
		dest = filepath.Join(tmpOut, g.bins[0])
	}
	args := []string{"build", "-o", dest}
	if len(g.tags) > 0 {
		args = append(args, "-tags", strings.Join(g.tags, ","))
	}
	if g.ldflags != "" {
		args = append(args, "-ldflags", g.ldflags)
	}
	args = append(args, g.pkgs...)
	cmd := exec.CommandContext(ctx, gobin, args...)
	cmd.Dir = mod
	// The caller's go environment (GOFLAGS=-mod=vendor, a go.work, cross-compiling GOOS) must not leak
	// into the wrapper build.
	cmd.Env = append(os.Environ(),
		"GOFLAGS="+modFlag+" -buildvcs=false",
		"GOWORK=off",
		"GOTOOLCHAIN=local",
		"GOOS="+runtime.GOOS,
		"GOARCH="+runtime.GOARCH,
	)
	if g.cgo {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=1")
	}
	var logBuf bytes.Buffer
	cmd.Stdout = &logBuf
	cmd.Stderr = &logBuf

	fmt.Fprintf(out, "sandbox: building %s %s (%s, once) into %s...\n", strings.Join(g.bins, ", "), g.version, g.estimate, filepath.Join(cache, g.dir))
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sandbox: starting go build: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case err = <-done:
			waiting = false
		case <-tick.C:
			fmt.Fprintf(out, "sandbox: still building %s (%s)\n", strings.Join(g.bins, ", "), time.Since(start).Round(time.Second))
		}
	}
	if err != nil {
		return fmt.Errorf("sandbox: building %s %s: %w\n%s", strings.Join(g.bins, ", "), g.version, err, lastLines(logBuf.String(), 15))
	}
	for _, b := range g.bins {
		if err := os.Rename(filepath.Join(tmpOut, b), filepath.Join(cache, g.dir, b)); err != nil {
			return fmt.Errorf("sandbox: installing %s: %w", b, err)
		}
	}
	fmt.Fprintf(out, "sandbox: built %s in %s\n", strings.Join(g.bins, ", "), time.Since(start).Round(time.Second))
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}
