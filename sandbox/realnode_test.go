package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
)

// RequireRealNode fails the test when this host cannot run the real node, naming what is missing; outside
// CI (CI=true) it skips with that message instead, so a developer without root can run the other tests.
func requireRealNode(t *testing.T) {
	t.Helper()
	if err := RealNodeSupported(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// TestRealNode starts a sandbox with a real node, runs the test app on it behind an HTTP readiness probe,
// reads its log through the API server, and checks that stopping leaves nothing on the host.
func TestRealNode(t *testing.T) {
	requireRealNode(t)
	ctx := context.Background()
	c, err := Start(ctx, Options{RealNode: true, Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	n := c.node
	stopped := false
	defer func() {
		if !stopped {
			_ = c.Stop()
		}
	}()

	node, err := c.Client().CoreV1().Nodes().Get(ctx, RealNodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantRuntime := "containerd://" + strings.TrimPrefix(ContainerdVersion, "v")
	if info := node.Status.NodeInfo; info.KubeletVersion != KubeVersion || !strings.HasPrefix(info.ContainerRuntimeVersion, wantRuntime) {
		t.Errorf("node %s runs kubelet %s, %s; want %s, %s", RealNodeName, info.KubeletVersion, info.ContainerRuntimeVersion, KubeVersion, wantRuntime)
	}
	image, err := c.PushTestApp(ctx, "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	ns := "default" // not c.Namespace(t): its cleanup would run after Stop
	one := int32(1)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{
					NodeSelector: RealNodeSelector(),
					Containers: []corev1.Container{{
						Name: "web", Image: image, Env: []corev1.EnvVar{{Name: "VERSION", Value: "1.0.0"}, {Name: "READY_AFTER", Value: "1s"}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
	if _, err := c.Client().AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := c.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) == 0 {
			return false, nil
		}
		pod = pods.Items[0]
		for _, cond := range pod.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("the test app never became Ready on the real node: %+v\nkubelet log: %s", pod.Status, c.Logs(Kubelet))
	}
	_, subnet, _ := net.ParseCIDR(n.Subnet)
	if ip := net.ParseIP(pod.Status.PodIP); ip == nil || !subnet.Contains(ip) {
		t.Errorf("pod IP %q is not on the sandbox's bridge network %s", pod.Status.PodIP, n.Subnet)
	}
	logs, err := c.Client().CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil || !strings.Contains(string(logs), "testapp 1.0.0 listening on :8080") {
		t.Errorf("pod log through the API server = %q, %v; want the app's start line", logs, err)
	}

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	assertNodeGone(t, n)
	if _, err := os.Stat(c.Dir); err == nil {
		t.Errorf("work dir %s is left", c.Dir)
	}
}

// TestRealNodeCrashedStart: a kubelet that dies at start is named, with its log, and nothing is left.
func TestRealNodeCrashedStart(t *testing.T) {
	requireRealNode(t)
	dir := filepath.Join(t.TempDir(), "sandbox")
	_, err := Start(context.Background(), Options{Dir: dir, RealNode: true, Nodes: 1, NodeBinaries: RealNodeBinaries{Kubelet: "/bin/false"}})
	if err == nil {
		t.Fatal("a sandbox whose kubelet exits at once started")
	}
	if !strings.Contains(err.Error(), "kubelet exited during start") || !strings.Contains(err.Error(), filepath.Join(dir, "logs", "kubelet.log")) {
		t.Fatalf("error %q does not name the kubelet and its log", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "node", "node.json"))
	if err != nil {
		t.Fatal(err)
	}
	var n nodeState
	if err := json.Unmarshal(data, &n); err != nil {
		t.Fatal(err)
	}
	assertNodeGone(t, &n)
}

// assertNodeGone checks a stopped real node left no bridge, cgroup, mount, shim, socket folder or work dir.
func assertNodeGone(t *testing.T, n *nodeState) {
	t.Helper()
	if _, err := net.InterfaceByName(n.Bridge); err == nil {
		t.Errorf("bridge %s is left", n.Bridge)
	}
	if dirs := cgroupDirs(n.CgroupRoot); len(dirs) > 0 {
		t.Errorf("cgroups are left: %v", dirs)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if strings.Contains(sc.Text(), n.Dir+"/") || strings.Contains(sc.Text(), n.RunDir+"/") {
			t.Errorf("mount is left: %s", sc.Text())
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && (strings.Contains(string(cmd), n.socket()) || strings.Contains(string(cmd), n.Dir+"/")) {
			t.Errorf("process %s is left: %s", e.Name(), strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	if _, err := os.Stat(n.RunDir); err == nil {
		t.Errorf("%s is left", n.RunDir)
	}
	if !kubeletRunning() { // another sandbox's kubelet keeps its own settings
		for k, v := range n.Sysctls {
			if got := strings.TrimSpace(readFile(filepath.Join("/proc/sys", k))); got != v {
				t.Errorf("sysctl %s is %s, was %s before the node started", k, got, v)
			}
		}
	}
	if left, _ := filepath.Glob(filepath.Join(cniResults, "rollguard-"+n.ID+"-*")); len(left) > 0 {
		t.Errorf("CNI results are left: %v", left)
	}
	links, _ := os.ReadDir(containerLogLinks)
	for _, l := range links {
		if target, err := os.Readlink(filepath.Join(containerLogLinks, l.Name())); err == nil && strings.HasPrefix(target, n.Dir+"/") {
			t.Errorf("container log link %s is left", l.Name())
		}
	}
}

func readFile(p string) string {
	data, _ := os.ReadFile(p)
	return string(data)
}
