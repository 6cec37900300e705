package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Components of the real node (log files <dir>/logs/<component>.log).
const (
	Registry   = "registry"
	Containerd = "containerd"
	Kubelet    = "kubelet"
)

// RealNodeName is the real node's name. The API server reaches the kubelet (for pod logs) through the
// node's Hostname address, and "localhost" resolves to loopback: no traffic leaves the machine.
const RealNodeName = "localhost"

// NodeLabel tells the sandbox's nodes apart: "kwok" on simulated nodes, "real" on the real node.
const NodeLabel = "sandbox.rollguard.dev/node"

// RealNodeSelector is the node selector that puts a workload on the real node.
func RealNodeSelector() map[string]string { return map[string]string{NodeLabel: "real"} }

// RealNodeBinaries holds the paths of the real node's executables.
type RealNodeBinaries struct {
	Kubelet    string
	Containerd string
	Shim       string // containerd-shim-runc-v2
	Runc       string
}

// EnsureRealNodeBinaries returns the real node's binaries from the cache, building the missing ones first
// (unless opts.NoBuild): kubelet from the control plane's wrapper module, containerd and its runc shim, and
// runc with seccomp.
func EnsureRealNodeBinaries(ctx context.Context, opts Options) (RealNodeBinaries, error) {
	if err := buildPrerequisites(); err != nil {
		return RealNodeBinaries{}, err
	}
	cache, err := ensureGroups(ctx, opts, realNodeGroups(), "build --real-node")
	if err != nil {
		return RealNodeBinaries{}, err
	}
	return RealNodeBinaries{
		Kubelet:    filepath.Join(cache, "kubelet-"+KubeVersion, "kubelet"),
		Containerd: filepath.Join(cache, "containerd-"+ContainerdVersion, "containerd"),
		Shim:       filepath.Join(cache, "containerd-"+ContainerdVersion, "containerd-shim-runc-v2"),
		Runc:       filepath.Join(cache, "runc-"+RuncVersion, "runc"),
	}, nil
}

// installHint is the one command that installs every Debian package the real node needs.
const installHint = "run .ci/realnode.sh (apt-get install libseccomp-dev pkg-config containernetworking-plugins docker-registry iproute2)"

// buildPrerequisites checks what building runc with seccomp needs, before minutes are spent on other builds.
func buildPrerequisites() error {
	if err := exec.Command("pkg-config", "--exists", "libseccomp").Run(); err != nil {
		return fmt.Errorf("sandbox: real node: runc is built with seccomp and needs pkg-config and libseccomp-dev (pkg-config --exists libseccomp: %v); %s", err, installHint)
	}
	return nil
}

// cniBinDir is where Debian's containernetworking-plugins puts bridge, host-local and loopback.
const cniBinDir = "/usr/lib/cni"

// RealNodeSupported reports why this host cannot run the real node, or nil when it can: the kubelet and
// containerd need root, overlayfs, cgroups, Debian's CNI plugins, the registry server and `ip`.
func RealNodeSupported() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (the kubelet and containerd manage cgroups, mounts and network namespaces)")
	}
	if fs, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(fs), "\toverlay\n") {
		missing = append(missing, "the overlay file system (containerd's snapshotter; modprobe overlay)")
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
		if _, err2 := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err2 != nil {
			missing = append(missing, "cgroups mounted under /sys/fs/cgroup")
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(cniBinDir, p)); err != nil {
			missing = append(missing, "the CNI plugin "+filepath.Join(cniBinDir, p)+" (Debian containernetworking-plugins)")
		}
	}
	if _, err := RegistryBinary(); err != nil {
		missing = append(missing, err.Error())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		missing = append(missing, "the ip command (Debian iproute2)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("sandbox: this host cannot run the real node; missing: %s; %s", strings.Join(missing, "; "), installHint)
	}
	return nil
}

// RegistryBinaryEnv overrides the registry server binary (default: docker-registry or registry on PATH).
const RegistryBinaryEnv = "ROLLGUARD_REGISTRY_BIN"

// RegistryBinary finds the registry server: $ROLLGUARD_REGISTRY_BIN, else docker-registry (Debian) or registry
// (distribution's own name) on PATH.
func RegistryBinary() (string, error) {
	if p := os.Getenv(RegistryBinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %v", RegistryBinaryEnv, p, err)
		}
		return p, nil
	}
	for _, n := range []string{"docker-registry", "registry"} {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", errors.New("the registry server (Debian docker-registry)")
}

// nodeState is what a real node leaves on the host, recorded in state.json so Down (another process) and
// Stop clean up the same things. Every name carries the instance id: two sandboxes never share one.
type nodeState struct {
	ID         string `json:"id"`
	Dir        string `json:"dir"`        // <work dir>/node: containerd root and state, kubelet root, pod logs
	RunDir     string `json:"runDir"`     // /run/rollguard-<id>: sockets (unix socket paths are short)
	Bridge     string `json:"bridge"`     // rg<id>
	CgroupRoot string `json:"cgroupRoot"` // /rollguard-<id> in every cgroup hierarchy
	Subnet     string `json:"subnet"`     // the pods' /24
	Shim       string `json:"shim"`       // the containerd-shim-runc-v2 binary
	// Sysctls are the host's values of the kernel settings the kubelet overwrites at start (panic on oops,
	// overcommit, ...), restored when the node stops and no other kubelet runs.
	Sysctls map[string]string `json:"sysctls,omitempty"`
}

func (n *nodeState) socket() string { return filepath.Join(n.RunDir, "containerd.sock") }

func newNodeState(dir string, bins RealNodeBinaries) (*nodeState, error) {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	subnet, err := freeSubnet()
	if err != nil {
		return nil, err
	}
	return &nodeState{
		ID: id, Dir: filepath.Join(dir, "node"), RunDir: "/run/rollguard-" + id, Bridge: "rg" + id,
		CgroupRoot: "/rollguard-" + id, Subnet: subnet, Shim: bins.Shim, Sysctls: readSysctls(),
	}, nil
}

// freeSubnet picks a 10.x.y.0/24 that no interface of this host has an address in (other sandboxes'
// bridges included), away from the service (10.96/16) and kwok pod (10.244/16) ranges.
func freeSubnet() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("sandbox: listing host addresses: %w", err)
	}
	for range 50 {
		b := make([]byte, 2)
		_, _ = rand.Read(b)
		_, cidr, _ := net.ParseCIDR(fmt.Sprintf("10.%d.%d.0/24", 160+int(b[0])%60, b[1]))
		used := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && (cidr.Contains(ipn.IP) || ipn.Contains(cidr.IP)) {
				used = true
			}
		}
		if !used {
			return cidr.String(), nil
		}
	}
	return "", errors.New("sandbox: no free 10.x.y.0/24 for the real node's pods")
}

// startRealNode starts the registry, pushes the pause image, starts containerd and the kubelet, and waits
// until the node is Ready.
func (c *Cluster) startRealNode(ctx context.Context) error {
	if err := RealNodeSupported(); err != nil {
		return err
	}
	bins, err := EnsureRealNodeBinaries(ctx, c.opts)
	if err != nil {
		return err
	}
	o := c.opts.NodeBinaries
	for _, b := range []struct {
		over string
		p    *string
	}{{o.Kubelet, &bins.Kubelet}, {o.Containerd, &bins.Containerd}, {o.Shim, &bins.Shim}, {o.Runc, &bins.Runc}} {
		if b.over != "" {
			*b.p = b.over
		}
	}
	c.nodeBins = bins
	n, err := newNodeState(c.Dir, bins)
	if err != nil {
		return err
	}
	for _, d := range []string{n.Dir, n.RunDir, filepath.Join(c.Dir, "registry")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("sandbox: real node: %w", err)
		}
	}
	// What the node creates on the host, for a person (or test) looking at a failed run's folder.
	if data, err := json.MarshalIndent(n, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(n.Dir, "node.json"), data, 0o644)
	}
	c.mu.Lock()
	c.node = n // recorded before anything is created, so a failed start is cleaned up
	err = c.saveStateLocked()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := c.StartRegistry(ctx); err != nil {
		return err
	}
	if c.pauseImage, err = c.pushPause(ctx); err != nil {
		return err
	}
	if err := writeNodeConfig(n, c.RegistryHost(), c.pauseImage, bins); err != nil {
		return err
	}
	if err := makeCgroupRoot(n.CgroupRoot); err != nil {
		return err
	}
	env := []string{"PATH=" + filepath.Dir(bins.Shim) + ":" + os.Getenv("PATH")}
	containerdArgs := func() []string { return []string{"--config", filepath.Join(n.Dir, "containerd.toml")} }
	if err := c.launch(ctx, Containerd, nil, containerdArgs, env, c.containerdReady); err != nil {
		return err
	}
	if err := c.launch(ctx, Kubelet, []string{"kubelet", "kubelet-healthz"}, c.kubeletArgs, nil, nil); err != nil {
		return err
	}
	if err := c.waitRealNode(ctx); err != nil {
		return err
	}
	return c.warmPause(ctx)
}

// warmPause runs one pod on the real node so containerd pulls the pause image now. A real node has its
// pause image long before any release; without this, the first pod of a test that stops the registry
// would fail to get a sandbox instead of failing to pull its own image.
func (c *Cluster) warmPause(ctx context.Context) error {
	no := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sandbox-pause-warmup", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName: RealNodeName, AutomountServiceAccountToken: &no, TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{Name: "pause", Image: c.pauseImage}},
		},
	}
	pods := c.client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("sandbox: real node: creating the warm-up pod: %w", err)
	}
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running != nil {
				return true, nil
			}
			if w := cs.State.Waiting; w != nil {
				last = w.Reason + ": " + w.Message
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("sandbox: real node: the pause image %s does not run (%s); see %s and %s", c.pauseImage, last, c.Logs(Kubelet), c.Logs(Containerd))
	}
	zero := int64(0)
	if err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		return fmt.Errorf("sandbox: real node: deleting the warm-up pod: %w", err)
	}
	return nil
}

func (c *Cluster) containerdReady(ctx context.Context) error {
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", c.node.socket())
	if err != nil {
		return err
	}
	return conn.Close()
}

// kubeletArgs is called with c.mu held (see launch).
func (c *Cluster) kubeletArgs() []string {
	n := c.node
	port, healthz := c.ports["kubelet"], c.ports["kubelet-healthz"]
	cfg := filepath.Join(n.Dir, "kubelet.yaml")
	// Written here, not once: a port clash retries with new ports.
	_ = os.WriteFile(cfg, []byte(kubeletConfig(n, c.pki.CACert, port, healthz)), 0o644)
	return []string{"--config=" + cfg, "--kubeconfig=" + c.Kubeconfig,
		"--root-dir=" + filepath.Join(n.Dir, "kubelet"), "--cert-dir=" + filepath.Join(n.Dir, "kubelet", "pki"),
		"--hostname-override=" + RealNodeName,
		"--node-labels=" + NodeLabel + "=real", "--volume-plugin-dir=" + filepath.Join(n.Dir, "volume-plugins"),
		"--v=2"}
}

// waitRealNode waits until the node "localhost" is Ready, naming the kubelet's log when it is not.
func (c *Cluster) waitRealNode(ctx context.Context) error {
	timeout := max(c.opts.ReadyTimeout, 2*time.Minute) // the kubelet takes about 15 s on an idle machine
	var why string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, name := range []string{Registry, Containerd, Kubelet} {
			c.mu.Lock()
			p := c.procs[name]
			c.mu.Unlock()
			if p != nil && p.exited() {
				return false, c.exitedErr(p)
			}
		}
		node, err := c.client.CoreV1().Nodes().Get(ctx, RealNodeName, metav1.GetOptions{})
		if err != nil {
			why = fmt.Sprintf("node %s not registered (%v)", RealNodeName, err)
			return false, nil
		}
		if !nodeReady(node) {
			why = "node " + RealNodeName + " not Ready: " + nodeReadyMessage(node)
			return false, nil
		}
		return true, nil
	})
	if err == nil {
		return nil
	}
	if strings.HasPrefix(err.Error(), "sandbox:") {
		return err
	}
	c.mu.Lock()
	p := c.procs[Kubelet]
	c.mu.Unlock()
	return fmt.Errorf("sandbox: kubelet: the real node did not become Ready within %s (%s); see %s and %s:\n%s",
		timeout, why, c.Logs(Kubelet), c.Logs(Containerd), p.logTail(8))
}

func nodeReadyMessage(n *corev1.Node) string {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Reason + ": " + cond.Message
		}
	}
	return "no Ready condition yet"
}

// RegistryHost returns host:port of the real node's registry (plain HTTP on 127.0.0.1); empty without a
// real node.
func (c *Cluster) RegistryHost() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ports["registry"] == 0 {
		return ""
	}
	return "127.0.0.1:" + strconv.Itoa(c.ports["registry"])
}

// StopRegistry stops the real node's registry (SIGKILL: an outage, not a shutdown). Pulls then fail with
// "connection refused" until StartRegistry brings it back on the same port with the same images.
func (c *Cluster) StopRegistry() error {
	c.mu.Lock()
	p := c.procs[Registry]
	c.mu.Unlock()
	if p == nil {
		return errors.New("sandbox: the registry is not running (start the sandbox with a real node)")
	}
	p.stop(0)
	return nil
}

// StartRegistry starts the real node's registry (again), on its port and storage, and waits until it answers.
func (c *Cluster) StartRegistry(ctx context.Context) error {
	bin, err := RegistryBinary()
	if err != nil {
		return fmt.Errorf("sandbox: real node needs %v; %s", err, installHint)
	}
	c.mu.Lock()
	restart := c.ports["registry"] != 0
	c.mu.Unlock()
	dir := filepath.Join(c.Dir, "registry")
	args := func() []string { // called with c.mu held (see launch)
		addr := "127.0.0.1:" + strconv.Itoa(c.ports["registry"])
		cfg := filepath.Join(dir, "config.yml")
		_ = os.WriteFile(cfg, []byte(RegistryConfig(filepath.Join(dir, "storage"), addr, "")), 0o644)
		return []string{"serve", cfg}
	}
	ready := func(ctx context.Context) error {
		return httpOK(ctx, http.DefaultClient, "http://"+c.RegistryHost()+"/v2/")
	}
	if !restart {
		c.mu.Lock()
		c.registryBin = bin
		c.mu.Unlock()
		return c.launch(ctx, Registry, []string{"registry"}, args, nil, ready)
	}
	c.mu.Lock()
	p := &process{name: Registry, bin: bin, args: args(), logPath: c.Logs(Registry)}
	c.mu.Unlock()
	if err := c.run(p); err != nil {
		return err
	}
	return c.waitReady(ctx, p, ready)
}

// RegistryConfig is a distribution registry configuration: filesystem storage with deletes enabled, quiet
// logs, listening on addr; extra is appended (an auth: section, say).
func RegistryConfig(storage, addr, extra string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
%s`, storage, addr, extra)
}
