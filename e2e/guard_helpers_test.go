package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/sandbox"
)

// guardSA is the identity every guard in these tests runs as (impersonated), bound to exactly the
// ClusterRole `rollguard guard manifests` prints: the tests prove that role is enough.
const guardSA = "system:serviceaccount:rollguard-system:rollguard-guard"

var installGuardOnce sync.Once

// installGuardRBAC applies the Namespace, ServiceAccount, ClusterRole and binding of `rollguard guard
// manifests` (not its Deployment: the guard runs here as a process, impersonating the ServiceAccount).
func installGuardRBAC(t *testing.T) {
	t.Helper()
	installGuardOnce.Do(func() {
		r := rollguard(t, "", "guard", "manifests")
		if r.code != 0 {
			t.Fatalf("guard manifests: exit %d\n%s", r.code, r.stderr)
		}
		var rbac []string
		for _, doc := range strings.Split(r.stdout, "\n---\n") {
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatal(err)
			}
			if meta.Kind != "Deployment" {
				rbac = append(rbac, doc)
			}
		}
		kubectl(t, strings.Join(rbac, "\n---\n"), "apply", "-f", "-")
	})
}

// guardProc is a `rollguard guard` process.
type guardProc struct {
	cmd     *exec.Cmd
	metrics string
	health  string
	out     *lockedBuffer
	done    chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startGuard runs the guard as its ServiceAccount, electing its leader with a Lease in leaseNS (each test
// its own, so guards of different tests never share a leader).
func startGuard(t *testing.T, leaseNS string, env ...string) *guardProc {
	t.Helper()
	return startGuardArgs(t, leaseNS, env)
}

// startGuardArgs is startGuard with more guard flags.
func startGuardArgs(t *testing.T, leaseNS string, env []string, args ...string) *guardProc {
	t.Helper()
	installGuardRBAC(t)
	g := &guardProc{metrics: freeAddr(t), health: freeAddr(t), out: &lockedBuffer{}, done: make(chan struct{})}
	g.cmd = exec.Command(binary, append([]string{"guard", "--as", guardSA, "-n", leaseNS, "--lease-duration", "4s",
		"--metrics-addr", g.metrics, "--health-addr", g.health, "--log-level", "info"}, args...)...)
	g.cmd.Env = append([]string{"KUBECONFIG=" + cluster.Kubeconfig, "HOME=" + t.TempDir()}, env...)
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.cmd.Wait(); close(g.done) }()
	t.Cleanup(func() {
		g.kill()
		if t.Failed() {
			t.Logf("guard %d output:\n%s", g.cmd.Process.Pid, g.out.String())
		}
	})
	g.waitReady(t)
	return g
}

func (g *guardProc) kill() {
	_ = g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.done
}

func (g *guardProc) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

func (g *guardProc) waitReady(t *testing.T) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if g.exited() {
			return false, fmt.Errorf("guard exited")
		}
		return httpGet("http://"+g.health+"/readyz") == nil, nil
	})
	if err != nil {
		t.Fatalf("guard never ready: %v\n%s", err, g.out.String())
	}
}

// metric reads one series of the guard's /metrics (0 when absent).
func (g *guardProc) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.metrics + "/metrics")
	if err != nil {
		t.Fatalf("reading /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// waitLeading waits until this guard leads (its controllers run).
func (g *guardProc) waitLeading(t *testing.T) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return g.leading(t), nil
	})
	if err != nil {
		t.Fatalf("guard never led: %v\n%s", err, g.out.String())
	}
}

// leading reports whether this guard holds the leader Lease (controller-runtime's own gauge).
func (g *guardProc) leading(t *testing.T) bool {
	return g.metric(t, `leader_election_master_status{name="rollguard-guard"}`) == 1
}

func httpGet(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

var kubectlPath struct {
	once sync.Once
	path string
	err  error
}

// kubectl runs the sandbox's kubectl (same version as the cluster), as a teammate or a GitOps tool would.
func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	kubectlPath.once.Do(func() {
		kubectlPath.path, kubectlPath.err = sandbox.EnsureKubectl(context.Background(), sandbox.Options{Progress: os.Stderr})
	})
	if kubectlPath.err != nil {
		t.Fatal(kubectlPath.err)
	}
	cmd := exec.Command(kubectlPath.path, args...)
	cmd.Env = []string{"KUBECONFIG=" + cluster.Kubeconfig, "HOME=" + t.TempDir()}
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// guardedNamespace is a test namespace labelled for the guard.
func guardedNamespace(t *testing.T) string {
	t.Helper()
	ns := cluster.Namespace(t)
	kubectl(t, "", "label", "namespace", ns, "rollguard.dev/guard=enabled")
	return ns
}

// waitAvailable waits until the web Deployment runs image, fully available.
func waitAvailable(t *testing.T, ns, name, image string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := cluster.Client().AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return d.Spec.Template.Spec.Containers[0].Image == image && available(d), nil
	})
	if err != nil {
		t.Fatalf("%s/%s never became available on %s: %v", ns, name, image, err)
	}
}

// guardRecords are the app's records the guard wrote, newest first.
func guardRecords(t *testing.T, ns, app string) []*release.Record {
	t.Helper()
	var out []*release.Record
	for _, r := range records(t, ns, app) {
		if r.ObservedBy != "" {
			out = append(out, r)
		}
	}
	return out
}

// waitGuardRecord waits until the newest guard record of app satisfies ok.
func waitGuardRecord(t *testing.T, ns, app string, ok func(*release.Record) bool) *release.Record {
	t.Helper()
	var last *release.Record
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		rs := guardRecords(t, ns, app)
		if len(rs) == 0 {
			return false, nil
		}
		last = rs[0]
		return ok(last), nil
	})
	if err != nil {
		t.Fatalf("no guard record of %s in %s as wanted (last: %+v): %v", app, ns, last, err)
	}
	return last
}

// waitEvents waits until the guard has emitted Events with all these reasons about a workload (the
// recorder sends them after the fact it reports).
func waitEvents(t *testing.T, ns, name string, reasons ...string) {
	t.Helper()
	var got []string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		got = eventReasons(t, ns, name)
		for _, r := range reasons {
			if !slices.Contains(got, r) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("events about %s/%s: %v, want %v", ns, name, got, reasons)
	}
}

// eventReasons lists the reasons of the Events about a workload, oldest first.
func eventReasons(t *testing.T, ns, name string) []string {
	t.Helper()
	evs, err := cluster.Client().CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		if e.ReportingController == "rollguard-guard" || e.Source.Component == "rollguard-guard" {
			out = append(out, e.Reason)
		}
	}
	return out
}
