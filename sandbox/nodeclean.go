package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cleanupNode removes what a real node leaves on the host once the kubelet and containerd have stopped: the
// pods' processes (everything in the sandbox's cgroups), containerd's shims, mounts under the node's
// folders (overlay root file systems, network namespaces, volumes), the bridge, the cgroups and the socket
// folder. Calling it again finds nothing to do.
func cleanupNode(n *nodeState) error {
	var errs []error
	if err := killCgroupProcs(n.CgroupRoot); err != nil {
		errs = append(errs, err)
	}
	if err := killShims(n); err != nil {
		errs = append(errs, err)
	}
	if err := unmountUnder(n.Dir, n.RunDir); err != nil {
		errs = append(errs, err)
	}
	if _, err := net.InterfaceByName(n.Bridge); err == nil {
		if out, err := exec.Command("ip", "link", "delete", n.Bridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("deleting bridge %s: %v: %s", n.Bridge, err, strings.TrimSpace(string(out))))
		}
	}
	if err := removeCgroups(n.CgroupRoot); err != nil {
		errs = append(errs, err)
	}
	removeHostRecords(n)
	if err := os.RemoveAll(n.RunDir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("sandbox: cleaning up the real node: %w", errors.Join(errs...))
	}
	return nil
}

// The kubelet and CNI keep a few records at fixed host paths: a symlink per container log in
// /var/log/containers, and libcni's cached results in /var/lib/cni/results. The kubelet and containerd remove
// them when a pod goes away; a stopped node's pods never go away, so their records are removed here: the links
// into this node's folder, the results of its network and of its pod sandboxes' loopback.
const (
	containerLogLinks = "/var/log/containers"
	cniResults        = "/var/lib/cni/results"
)

func removeHostRecords(n *nodeState) {
	if links, err := os.ReadDir(containerLogLinks); err == nil {
		for _, l := range links {
			p := filepath.Join(containerLogLinks, l.Name())
			if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, n.Dir+"/") {
				_ = os.Remove(p)
			}
		}
	}
	results, _ := filepath.Glob(filepath.Join(cniResults, "rollguard-"+n.ID+"-*"))
	for _, sub := range []string{"root", "state"} {
		sandboxes, _ := os.ReadDir(filepath.Join(n.Dir, "containerd", sub, "io.containerd.grpc.v1.cri", "sandboxes"))
		for _, sb := range sandboxes {
			results = append(results, filepath.Join(cniResults, "cni-loopback-"+sb.Name()+"-lo"))
		}
	}
	for _, p := range results {
		_ = os.Remove(p)
	}
	// The kubelet's device-plugin socket path is fixed (not under --root-dir). Remove it, and the folders if
	// that empties them, unless some kubelet still runs (another sandbox's, or the host's own).
	if !kubeletRunning() {
		_ = os.Remove(filepath.Join(devicePlugins, "kubelet.sock"))
		_ = os.Remove(devicePlugins)
		_ = os.Remove(filepath.Dir(devicePlugins))
		for k, v := range n.Sysctls {
			_ = os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644)
		}
	}
}

// kubeletSysctls are the kernel settings the kubelet sets at start (setupKernelTunables, unless
// protectKernelDefaults, which would refuse to start instead), as paths under /proc/sys.
var kubeletSysctls = []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"}

func readSysctls() map[string]string {
	out := map[string]string{}
	for _, k := range kubeletSysctls {
		if v, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil {
			out[k] = strings.TrimSpace(string(v))
		}
	}
	return out
}

const devicePlugins = "/var/lib/kubelet/device-plugins"

func kubeletRunning() bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == "kubelet" {
			return true
		}
	}
	return false
}

// cgroupDirs returns every cgroup under root in every hierarchy, deepest first.
func cgroupDirs(root string) []string {
	var dirs []string
	for _, h := range cgroupHierarchies() {
		_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return dirs
}

// killCgroupProcs SIGKILLs every process in the sandbox's cgroups until none is left.
func killCgroupProcs(root string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pids []int
		for _, d := range cgroupDirs(root) {
			data, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
					pids = append(pids, pid)
				}
			}
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still run in cgroup %s", pids, root)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond) // other processes' exits: nothing to wait on but their cgroup
	}
}

// killShims SIGKILLs the containerd-shim-runc-v2 processes serving this sandbox's containerd (found by the
// -address argument they were started with; another sandbox's shims have another address).
func killShims(n *nodeState) error {
	find := func() []int {
		var pids []int
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil {
				continue
			}
			args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
			if filepath.Base(args[0]) != "containerd-shim-runc-v2" {
				continue
			}
			for i, a := range args[:len(args)-1] {
				if a == "-address" && args[i+1] == n.socket() {
					pids = append(pids, pid)
				}
			}
		}
		return pids
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := find()
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd shims %v still run", pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond) // as above
	}
}

// unmountUnder detaches every mount below the given folders, deepest first.
func unmountUnder(dirs ...string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMount(fields[4])
		for _, d := range dirs {
			if strings.HasPrefix(p, d+"/") {
				points = append(points, p)
			}
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeCgroups removes the sandbox's (now empty) cgroups, deepest first.
func removeCgroups(root string) error {
	var errs []error
	for _, d := range cgroupDirs(root) {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}
