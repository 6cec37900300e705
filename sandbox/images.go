package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The programs the real node runs as images: pause (every pod's sandbox) and testapp (the scenarios'
// application). Their sources are embedded so any caller can build them, whatever its own module.
//
//go:embed images/pause/main.go images/testapp/main.go
var imageSources embed.FS

// TestApp is the name of the test application image (see images/testapp for its knobs).
const TestApp = "testapp"

// PushTestApp builds the test application and pushes it to the real node's registry as testapp:tag. Each tag
// is a distinct image (its config names the tag), so a new tag always makes the node pull. It returns the
// image reference for a pod spec.
func (c *Cluster) PushTestApp(ctx context.Context, tag string) (string, error) {
	return c.pushProgram(ctx, TestApp, tag)
}

// ImageRef returns the reference of repo:tag in the real node's registry, whether pushed or not.
func (c *Cluster) ImageRef(repo, tag string) string { return c.RegistryHost() + "/" + repo + ":" + tag }

// PauseImage returns the pod sandbox image the real node's containerd is pinned to.
func (c *Cluster) PauseImage() string { return c.pauseImage }

func (c *Cluster) pushPause(ctx context.Context) (string, error) {
	return c.pushProgram(ctx, "pause", "rollguard")
}

func (c *Cluster) pushProgram(ctx context.Context, program, tag string) (string, error) {
	if c.RegistryHost() == "" {
		return "", fmt.Errorf("sandbox: no registry: start the sandbox with a real node (Options.RealNode)")
	}
	bin, err := c.buildProgram(ctx, program)
	if err != nil {
		return "", err
	}
	ref := c.ImageRef(program, tag)
	if err := pushBinary(ctx, bin, ref, map[string]string{"sandbox.rollguard.dev/tag": tag}); err != nil {
		return "", fmt.Errorf("sandbox: pushing %s: %w; see %s", ref, err, c.Logs(Registry))
	}
	return ref, nil
}

// buildProgram builds an embedded program as a static Linux binary, once per cluster: callers in parallel
// wait for the first build instead of writing the same temporary file at once.
func (c *Cluster) buildProgram(ctx context.Context, program string) (string, error) {
	c.programs.Lock()
	defer c.programs.Unlock()
	out := filepath.Join(c.Dir, "images", program)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	src, err := imageSources.ReadFile("images/" + program + "/main.go")
	if err != nil {
		return "", fmt.Errorf("sandbox: no image program %q", program)
	}
	mod, err := os.MkdirTemp("", "rollguard-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(mod)
	files := map[string][]byte{"go.mod": []byte("module rollguard.local/" + program + "\n\ngo 1.26\n"), "main.go": src}
	for n, data := range files {
		if err := os.WriteFile(filepath.Join(mod, n), data, 0o644); err != nil {
			return "", err
		}
	}
	tmp := out + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", tmp, ".")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("sandbox: building image program %s: %v\n%s", program, err, out)
	}
	return out, os.Rename(tmp, out)
}

// pushBinary pushes a one-layer image holding bin as /bin/<name>, its entrypoint.
func pushBinary(ctx context.Context, bin, ref string, labels map[string]string) error {
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	exe := "bin/" + filepath.Base(bin)
	if err := tw.WriteHeader(&tar.Header{Name: exe, Mode: 0o755, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		return err
	}
	// The config first, then the layer: AppendLayers records the layer's diff ID in the config.
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: runtime.GOARCH, OS: "linux", Created: v1.Time{Time: time.Unix(0, 0)},
		RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{Entrypoint: []string{"/" + exe}, Labels: labels, Env: []string{"PATH=/bin"}},
	})
	if err != nil {
		return err
	}
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return err
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	return remote.Write(tag, img, remote.WithContext(ctx))
}
