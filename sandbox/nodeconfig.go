package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeNodeConfig writes containerd's config, its registry hosts file and the CNI network, with the settings
// proven on this kind of machine (see docs/sandbox.md, "The real node").
func writeNodeConfig(n *nodeState, registry, pauseImage string, bins RealNodeBinaries) error {
	certs := filepath.Join(n.Dir, "certs.d")
	cniConf := filepath.Join(n.Dir, "cni")
	files := map[string]string{
		filepath.Join(n.Dir, "containerd.toml"):         containerdConfig(n, certs, cniConf, pauseImage, bins),
		filepath.Join(certs, registry, "hosts.toml"):    hostsTOML(registry),
		filepath.Join(cniConf, "10-rollguard.conflist"): cniConfig(n),
	}
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("sandbox: real node: %w", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return fmt.Errorf("sandbox: real node: writing %s: %w", p, err)
		}
	}
	return nil
}

// containerdConfig keeps every path containerd would otherwise take from the host (/var/lib/containerd,
// /run/containerd, /opt/containerd, /var/run/netns, the NRI socket) inside this sandbox.
func containerdConfig(n *nodeState, certs, cniConf, pauseImage string, bins RealNodeBinaries) string {
	return fmt.Sprintf(`version = 3
root = %q
state = %q

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.nri.v1.nri"]
  disable = true

[plugins."io.containerd.shim.v1.manager"]
  socket_dir = %q

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"

[plugins."io.containerd.cri.v1.images"]
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %q
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = %q

[plugins."io.containerd.cri.v1.runtime"]
  # The machine's root lacks CAP_SYS_RESOURCE: the kubelet's oom_score_adj -998 for pod sandboxes is
  # refused unless containerd clamps it to its own.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [%q]
    conf_dir = %q
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = %q
        Root = %q
        SystemdCgroup = false
`, filepath.Join(n.Dir, "containerd", "root"), filepath.Join(n.Dir, "containerd", "state"),
		n.socket(), n.socket()+".ttrpc", filepath.Join(n.Dir, "containerd", "opt"),
		filepath.Join(n.RunDir, "s"), pauseImage, certs,
		cniBinDir, cniConf, bins.Runc, filepath.Join(n.RunDir, "runc"))
}

// hostsTOML lets containerd pull from the plain-HTTP registry.
func hostsTOML(registry string) string {
	return fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+registry, "http://"+registry)
}

// cniConfig is one bridge network per sandbox: its own bridge, subnet and IPAM folder.
func cniConfig(n *nodeState) string {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "rollguard-" + n.ID,
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": n.Bridge, "isGateway": true, "ipMasq": false,
				"ipam": map[string]any{
					"type": "host-local", "ranges": [][]map[string]string{{{"subnet": n.Subnet}}},
					"dataDir": filepath.Join(n.Dir, "cni-ipam"),
				},
			},
			map[string]any{"type": "loopback"},
		},
	}
	data, _ := json.MarshalIndent(conf, "", "  ")
	return string(data) + "\n"
}

// kubeletConfig is the KubeletConfiguration of the real node. The API server authenticates to the kubelet
// with the sandbox's admin certificate (for pod logs); the kubelet listens on loopback only.
func kubeletConfig(n *nodeState, caFile string, port, healthzPort int) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: %d
healthzBindAddress: 127.0.0.1
healthzPort: %d
readOnlyPort: 0
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
cgroupRoot: %s
# This machine has cgroups v1; kubelet 1.36 refuses it unless told not to.
failCgroupV1: false
failSwapOn: false
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: %s
authorization:
  mode: AlwaysAllow
enforceNodeAllocatable: []
evictionHard: {}
imageGCHighThresholdPercent: 100
localStorageCapacityIsolation: false
# No cluster DNS runs; an address keeps the kubelet from warning MissingClusterDNS on every pod.
clusterDNS: [%s]
clusterDomain: cluster.local
podLogsDir: %s
maxPods: 30
`, port, healthzPort, n.socket(), n.CgroupRoot, caFile, clusterDNS, filepath.Join(n.Dir, "pod-logs"))
}

const clusterDNS = "10.96.0.10"

// cgroupHierarchies lists the mounted cgroup hierarchies (v1 controllers, systemd's and the unified one).
func cgroupHierarchies() []string {
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup"} // cgroups v2 only
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

// makeCgroupRoot creates the kubelet's cgroup root in every hierarchy (the kubelet refuses a root that does
// not exist), so every pod of this sandbox lives under it and stopping can find them all.
func makeCgroupRoot(root string) error {
	for _, h := range cgroupHierarchies() {
		p := filepath.Join(h, root)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("sandbox: real node: creating cgroup %s: %w", p, err)
		}
		// A new cpuset cgroup has no CPUs or memory nodes until given its parent's.
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if cur, err := os.ReadFile(filepath.Join(p, f)); err == nil && strings.TrimSpace(string(cur)) == "" {
				parent, _ := os.ReadFile(filepath.Join(h, f))
				_ = os.WriteFile(filepath.Join(p, f), parent, 0o644)
			}
		}
	}
	return nil
}
