// Package guard benchmarks `rollguard guard` at scale on the sandbox: 1,000 guarded Deployments (3 replicas
// each, 50 namespaces), 50 of them broken at once by one `kubectl apply`. It reports p50 and p99 from the
// change to the guard's verdict and to a healthy rollback, from the first failure signal to the verdict,
// the guard's peak RSS, and its API requests per minute while idle. The baseline, measured in the same run,
// is what Kubernetes itself offers: 5 unguarded Deployments broken at the same moment, with
// progressDeadlineSeconds 60, until the Deployment controller reports ProgressDeadlineExceeded (and never
// rolls back).
//
//	nice go test -run '^$' -bench Guard -benchtime 1x -timeout 60m ./bench/guard/
package guard

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rollguard/rollguard/bench/benchenv"
	"github.com/rollguard/rollguard/sandbox"
)

// The fleet's size; GUARD_BENCH_SCALE=small runs a quick 5×4 with 5 broken to check the benchmark itself.
var (
	namespaces   = 50
	perNamespace = 20
	broken       = 50
	unguarded    = 5
)

var (
	cluster   *sandbox.Cluster
	rollguard string
	kubectl   string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	flag.Parse()
	if !benchenv.Benchmarking() {
		return m.Run()
	}
	nodes := 40 // 3,000 pods and a surge: 40 nodes of 110 pods
	if os.Getenv("GUARD_BENCH_SCALE") == "small" {
		namespaces, perNamespace, broken, unguarded, nodes = 5, 4, 5, 2, 2
	}
	env, err := benchenv.Start(context.Background(), "rollguard-bench-guard-", sandbox.Options{Nodes: nodes})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	rollguard, kubectl, cluster = env.Rollguard, env.Kubectl, env.Cluster
	return m.Run()
}

func deployment(name, image string, broken bool, deadline int) string {
	label, pd := "", ""
	if broken {
		label = "\n        sandbox.rollguard.dev/scenario: image-pull-failure"
	}
	if deadline > 0 {
		pd = "\n  progressDeadlineSeconds: " + strconv.Itoa(deadline)
	}
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + name + `
spec:
  replicas: 3` + pd + `
  selector:
    matchLabels:
      app: ` + name + `
  template:
    metadata:
      labels:
        app: ` + name + label + `
    spec:
      containers:
      - name: web
        image: ` + image + "\n"
}

func BenchmarkGuard(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchGuard(b)
	}
}

func benchGuard(b *testing.B) {
	ctx := context.Background()
	// The guarded fleet, and the unguarded control group, all healthy on 1.0.0.
	var nss []string
	for n := range namespaces {
		ns := fmt.Sprintf("guard-bench-%02d", n)
		nss = append(nss, ns)
		var docs []string
		docs = append(docs, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: "+ns+"\n  labels:\n    rollguard.dev/guard: enabled\n")
		for d := range perNamespace {
			docs = append(docs, "metadata:\n  namespace: "+ns+"\n"+deployment(fmt.Sprintf("web-%02d", d), "registry.example.com/web:1.0.0", false, 0))
		}
		must(b, kube(strings.Join(fixNamespace(docs), "---\n"), "apply", "-f", "-"))
	}
	ctrl := "guard-bench-control"
	var ctrlDocs []string
	ctrlDocs = append(ctrlDocs, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: "+ctrl+"\n")
	for d := range unguarded {
		ctrlDocs = append(ctrlDocs, "metadata:\n  namespace: "+ctrl+"\n"+deployment(fmt.Sprintf("web-%02d", d), "registry.example.com/web:1.0.0", false, 60))
	}
	must(b, kube(strings.Join(fixNamespace(ctrlDocs), "---\n"), "apply", "-f", "-"))
	waitAllAvailable(b, append(nss, ctrl), namespaces*perNamespace+unguarded)
	fmt.Fprintf(os.Stderr, "fleet ready: %d Deployments x 3 replicas in %d namespaces\n", namespaces*perNamespace, namespaces)

	// The guard, as a process, with its own leader Lease namespace.
	lease := "guard-bench-lease"
	must(b, kube("", "create", "namespace", lease))
	metrics, health := freeAddr(b), freeAddr(b)
	logPath := filepath.Join(b.TempDir(), "guard.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	args := []string{"guard", "-n", lease, "--metrics-addr", metrics, "--health-addr", health, "--log-level", "info"}
	// GUARD_BENCH_ARGS adds guard flags, to compare settings (e.g. --kube-api-qps) on the same fleet.
	args = append(args, strings.Fields(os.Getenv("GUARD_BENCH_ARGS"))...)
	guard := exec.Command(rollguard, args...)
	guard.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig)
	guard.Stdout, guard.Stderr = logFile, logFile
	if err := guard.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = guard.Process.Kill()
		_, _ = guard.Process.Wait()
		if b.Failed() {
			// The log lives in a temporary folder that goes with the run: show why it failed.
			if out, err := os.ReadFile(logPath); err == nil {
				lines := strings.Split(string(out), "\n")
				fmt.Fprintf(os.Stderr, "guard log (last 80 lines):\n%s\n", strings.Join(lines[max(0, len(lines)-80):], "\n"))
			}
		}
	}()
	startup := time.Now()
	poll(b, 5*time.Minute, func() bool {
		return httpOK("http://"+health+"/readyz") && scrape(metrics, `leader_election_master_status{name="rollguard-guard"}`) == 1
	})
	fmt.Fprintf(os.Stderr, "guard ready and leading after %.1fs\n", time.Since(startup).Seconds())
	var peakRSS int64
	var rssMu sync.Mutex
	stopRSS := make(chan struct{})
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopRSS:
				return
			case <-t.C:
				if r := rss(guard.Process.Pid); r > 0 {
					rssMu.Lock()
					peakRSS = max(peakRSS, r)
					rssMu.Unlock()
				}
			}
		}
	}()

	// Idle: one minute with nothing changing, after the startup burst.
	poll(b, 2*time.Minute, func() bool { return scrapeSum(metrics, "workqueue_depth{") == 0 })
	before := requests(metrics)
	idleStart := time.Now()
	time.Sleep(time.Minute) // the measurement window itself, not a wait for a condition
	after := requests(metrics)
	idleMin := time.Since(idleStart).Minutes()
	idleRSS := rss(guard.Process.Pid)

	// 50 Deployments, one per namespace, and the control group broken by one kubectl apply.
	var docs []string
	for n := range broken {
		docs = append(docs, "metadata:\n  namespace: "+nss[n]+"\n"+deployment("web-00", "registry.example.com/web:2.0.0", true, 0))
	}
	for d := range unguarded {
		docs = append(docs, "metadata:\n  namespace: "+ctrl+"\n"+deployment(fmt.Sprintf("web-%02d", d), "registry.example.com/web:2.0.0", true, 60))
	}
	stormBefore := requests(metrics)
	throttleBefore := scrape(metrics, "rollguard_guard_client_throttle_seconds_sum")
	change := time.Now()
	must(b, kube(strings.Join(fixNamespace(docs), "---\n"), "apply", "-f", "-"))

	// Wait until all 50 are rolled back healthy, and the control group reports its deadline.
	poll(b, 10*time.Minute, func() bool {
		return scrape(metrics, `rollguard_guard_rollbacks_total{result="healthy"}`) >= float64(broken)
	})
	healed := time.Since(change)
	stormAfter := requests(metrics)
	throttled := scrape(metrics, "rollguard_guard_client_throttle_seconds_sum") - throttleBefore
	queued := scrapeSum(metrics, `workqueue_queue_duration_seconds_sum{controller="guard-Deployment"`)
	queuedN := scrapeSum(metrics, `workqueue_queue_duration_seconds_count{controller="guard-Deployment"`)
	var deadline []time.Duration
	poll(b, 5*time.Minute, func() bool {
		deadline = deadline[:0]
		for d := range unguarded {
			dep, err := cluster.Client().AppsV1().Deployments(ctrl).Get(ctx, fmt.Sprintf("web-%02d", d), metav1.GetOptions{})
			if err != nil {
				return false
			}
			for _, c := range dep.Status.Conditions {
				if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
					deadline = append(deadline, c.LastUpdateTime.Sub(change))
				}
			}
		}
		return len(deadline) == unguarded
	})
	close(stopRSS)

	verdicts, signals, healthy, seen, following, late := parseLog(b, logPath, change)
	rssMu.Lock()
	peak := peakRSS
	rssMu.Unlock()

	fmt.Fprintf(os.Stderr, "\nrollguard guard: %d Deployments (3 replicas) in %d namespaces, %d broken at once by one kubectl apply\n", namespaces*perNamespace, namespaces, broken)
	fmt.Fprintf(os.Stderr, "| measure | p50 | p99 | max | n |\n|---|---|---|---|---|\n")
	row := func(name string, ds []time.Duration) {
		fmt.Fprintf(os.Stderr, "| %s | %.2f s | %.2f s | %.2f s | %d |\n", name, pct(ds, 50).Seconds(), pct(ds, 99).Seconds(), pct(ds, 100).Seconds(), len(ds))
	}
	row("first failure signal → guard verdict", signals)
	row("change → guard sees the rollout (new ReplicaSet in its cache)", seen)
	row("change → guard follows it (lock taken, record written)", following)
	row("change → guard verdict", verdicts)
	row("change → rollback proven healthy", healthy)
	row("baseline: change → ProgressDeadlineExceeded (60s deadline, no rollback)", deadline)
	fmt.Fprintf(os.Stderr, "the guard followed %d of %d rollouts only after their first failure signal\n", late, len(following))
	fmt.Fprintf(os.Stderr, "all %d healed within %.1f s of the change\n", broken, healed.Seconds())
	fmt.Fprintf(os.Stderr, "guard RSS: %.0f MB idle, %.0f MB peak\n", float64(idleRSS)/1e6, float64(peak)/1e6)
	fmt.Fprintf(os.Stderr, "idle API requests per minute: %s\n", perMinute(before, after, idleMin))
	fmt.Fprintf(os.Stderr, "API requests from the change until all healed: %s; per broken Deployment %.1f\n",
		perMinute(stormBefore, stormAfter, 1), total(stormBefore, stormAfter)/float64(broken))
	fmt.Fprintf(os.Stderr, "time the guard's requests waited for its client-side rate limit: %.1f s in all\n", throttled)
	if queuedN > 0 {
		fmt.Fprintf(os.Stderr, "Deployment workqueue: %.0f items, %.3f s mean wait in queue (whole run)\n", queuedN, queued/queuedN)
	}
	if len(deadline) > 0 && len(verdicts) > 0 {
		fmt.Fprintf(os.Stderr, "ratio (baseline p50 / guard verdict p50): %.0f×\n", pct(deadline, 50).Seconds()/pct(verdicts, 50).Seconds())
	}
	b.ReportMetric(pct(verdicts, 99).Seconds(), "verdict-p99-s")
	b.ReportMetric(pct(healthy, 99).Seconds(), "healthy-p99-s")
	b.ReportMetric(float64(peak)/1e6, "peak-rss-MB")
}

// fixNamespace moves each document's leading "metadata:\n  namespace: NS\n" into its own metadata.
func fixNamespace(docs []string) []string {
	out := make([]string, len(docs))
	for i, d := range docs {
		ns, rest, ok := strings.Cut(strings.TrimPrefix(d, "metadata:\n  namespace: "), "\n")
		if !strings.HasPrefix(d, "metadata:\n  namespace: ") || !ok {
			out[i] = d
			continue
		}
		out[i] = strings.Replace(rest, "metadata:\n", "metadata:\n  namespace: "+ns+"\n", 1)
	}
	return out
}

func waitAllAvailable(b *testing.B, nss []string, want int) {
	poll(b, 20*time.Minute, func() bool {
		n := 0
		for _, ns := range nss {
			list, err := cluster.Client().AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				return false
			}
			for _, d := range list.Items {
				if d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas == 3 && d.Status.UpdatedReplicas == 3 {
					n++
				}
			}
		}
		return n == want
	})
}

// parseLog reads the guard's log: verdict and signal times of each failed rollout, and when each
// rollback was proven healthy.
func parseLog(b *testing.B, path string, change time.Time) (verdicts, signals, healthy, seen, following []time.Duration, late int) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, `msg="rollout failed"`):
			v, sig := field(line, "verdict"), field(line, "signal")
			if f := field(line, "seen"); !f.IsZero() {
				seen = append(seen, f.Sub(change))
			}
			if f := field(line, "following"); !f.IsZero() {
				following = append(following, f.Sub(change))
				if f.After(sig) {
					late++
				}
			}
			if !v.IsZero() {
				verdicts = append(verdicts, v.Sub(change))
				if !sig.IsZero() && sig.After(change.Add(-time.Minute)) {
					signals = append(signals, v.Sub(sig))
				}
			}
		case strings.Contains(line, `msg="rolled back"`):
			if h := field(line, "healthy"); !h.IsZero() {
				healthy = append(healthy, h.Sub(change))
			}
		}
	}
	return verdicts, signals, healthy, seen, following, late
}

func field(line, key string) time.Time {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return time.Time{}
	}
	v := line[i+len(key)+2:]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

// requests sums client-go's rest_client_requests_total by method.
func requests(addr string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range metricLines(addr) {
		if !strings.HasPrefix(line, "rest_client_requests_total{") {
			continue
		}
		i := strings.Index(line, `method="`)
		j := strings.LastIndexByte(line, ' ')
		if i < 0 || j < 0 {
			continue
		}
		method := line[i+8:]
		method = method[:strings.IndexByte(method, '"')]
		v, _ := strconv.ParseFloat(line[j+1:], 64)
		out[method] += v
	}
	return out
}

func perMinute(before, after map[string]float64, minutes float64) string {
	var parts []string
	total := 0.0
	for m, v := range after {
		d := (v - before[m]) / minutes
		if d > 0 {
			parts = append(parts, fmt.Sprintf("%s %.1f", m, d))
			total += d
		}
	}
	sort.Strings(parts)
	return fmt.Sprintf("%.1f (%s)", total, strings.Join(parts, ", "))
}

func total(before, after map[string]float64) float64 {
	t := 0.0
	for m, v := range after {
		t += v - before[m]
	}
	return t
}

func scrape(addr, series string) float64 {
	for _, line := range metricLines(addr) {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// scrapeSum adds every series whose line starts with prefix.
func scrapeSum(addr, prefix string) float64 {
	sum := 0.0
	for _, line := range metricLines(addr) {
		if strings.HasPrefix(line, prefix) {
			if i := strings.LastIndexByte(line, ' '); i > 0 {
				f, _ := strconv.ParseFloat(line[i+1:], 64)
				sum += f
			}
		}
	}
	return sum
}

func metricLines(addr string) []string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.Split(string(body), "\n")
}

func httpOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// rss is a process's resident set in bytes, from /proc.
func rss(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func poll(b *testing.B, timeout time.Duration, ok func() bool) {
	b.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, timeout, true, func(context.Context) (bool, error) { return ok(), nil })
	if err != nil {
		b.Fatalf("condition not reached within %s", timeout)
	}
}

func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func kube(stdin string, args ...string) cmdResult {
	cmd := exec.Command(kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return cmdResult{out: string(out), err: err, args: args}
}

type cmdResult struct {
	out  string
	err  error
	args []string
}

func must(b *testing.B, r cmdResult) {
	if r.err != nil {
		b.Fatalf("kubectl %v: %v\n%s", r.args, r.err, r.out)
	}
}
