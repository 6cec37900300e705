// Package scale benchmarks large releases on the sandbox, against kubectl in the same run: for releases of
// N Deployments (2 replicas each) into nodes with room, rollguard deploy end to end (validated, recorded,
// applied, tracked until all healthy) beside a bare `kubectl apply --server-side` and beside apply +
// `kubectl rollout status -f`; then a variant with one workload broken, whose rollback rollguard does on its
// own, beside `kubectl rollout undo -f` of every workload. It reports the ratios to the bare apply, how long
// after the broken workload's pods show the image-pull failure rollguard reports it, and rollguard's peak RSS;
// for the deploy also when its last object was applied (from process start) and the CPU time it used.
//
//	SCALE_BENCH_SIZES=50,200,1000 go test -run '^$' -bench . -benchtime 1x -timeout 90m ./bench/scale/
//
// SCALE_BENCH_SIZES (default 50,200,1000) picks the sizes; SCALE_BENCH_SIZES=50 checks the benchmark itself.
package scale

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/rollguard/rollguard/bench/benchenv"
	"github.com/rollguard/rollguard/sandbox"
)

const replicas = 2

var (
	cluster   *sandbox.Cluster
	rollguard string
	kubectl   string
	sizes     []int
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	flag.Parse()
	if !benchenv.Benchmarking() {
		return m.Run()
	}
	spec := os.Getenv("SCALE_BENCH_SIZES")
	if spec == "" {
		spec = "50,200,1000"
	}
	total := 0
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			fmt.Fprintf(os.Stderr, "SCALE_BENCH_SIZES: %q is not a size of at least 2\n", f)
			return 1
		}
		sizes = append(sizes, n)
		total += n
	}
	// Nodes with room: every variant's pods stay (four namespaces per size, with a surge), 110 pods a node.
	nodes := total*replicas*5/100 + 2
	env, err := benchenv.Start(context.Background(), "rollguard-bench-scale-", sandbox.Options{Nodes: nodes})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	rollguard, kubectl, cluster = env.Rollguard, env.Kubectl, env.Cluster
	fmt.Fprintf(os.Stderr, "sandbox: %d kwok nodes for sizes %v\n", nodes, sizes)
	return m.Run()
}

// release is n Deployments; broken >= 0 gives that one a template whose image cannot be pulled.
func release(n int, tag string, broken int) string {
	var b strings.Builder
	for i := range n {
		scenario := ""
		if i == broken {
			scenario = "\n        sandbox.rollguard.dev/scenario: image-pull-failure"
		}
		fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%04[1]d
spec:
  replicas: %[2]d
  selector:
    matchLabels:
      app: app-%04[1]d
  template:
    metadata:
      labels:
        app: app-%04[1]d%[3]s
    spec:
      containers:
      - name: app
        image: registry.example.com/app:%[4]s
        resources:
          requests:
            cpu: 10m
            memory: 16Mi
`, i, replicas, scenario, tag)
	}
	return b.String()
}

// row is one size's measurements.
type row struct {
	n                            int
	bare, applyStatus, rollguard time.Duration
	undo, undoStatus, rollback   time.Duration
	signalToReport               time.Duration
	rgApplied, rgCPU             time.Duration // rollguard deploy: process start to every object applied; its CPU time
	rssDeploy, rssRollback       int64         // KiB
	load, brokenReason           string
}

func BenchmarkScale(b *testing.B) {
	var rows []row
	for i := 0; i < b.N; i++ {
		rows = rows[:0]
		for _, n := range sizes {
			b.Run(strconv.Itoa(n), func(b *testing.B) { rows = append(rows, measure(b, n)) })
		}
	}
	fmt.Fprintf(os.Stderr, "\nlarge releases: N Deployments x %d replicas; times in seconds; ratios to the bare apply of the same size\n", replicas)
	fmt.Fprintln(os.Stderr, "| N | kubectl apply --server-side (bare) | apply + rollout status | rollguard deploy e2e | ratio | broken reported after its pods' signal | rollguard rollback (restored + healthy) | ratio | kubectl rollout undo -f | undo + rollout status | rollguard RSS deploy / rollback | rollguard deploy: applied after / CPU | load before |")
	fmt.Fprintln(os.Stderr, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(os.Stderr, "| %d | %.1f | %.1f | %.1f | %.2f | %.1f s (%s) | %.1f | %.2f | %.1f | %.1f | %d / %d MB | %.1f / %.1f s | %s |\n",
			r.n, r.bare.Seconds(), r.applyStatus.Seconds(), r.rollguard.Seconds(), ratio(r.rollguard, r.bare),
			r.signalToReport.Seconds(), r.brokenReason, r.rollback.Seconds(), ratio(r.rollback, r.bare),
			r.undo.Seconds(), r.undoStatus.Seconds(), r.rssDeploy>>10, r.rssRollback>>10, r.rgApplied.Seconds(), r.rgCPU.Seconds(), r.load)
	}
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return a.Seconds() / b.Seconds()
}

func measure(b *testing.B, n int) row {
	r := row{n: n, load: loadavg()}
	v1, v2 := release(n, "1.0.0", -1), release(n, "2.0.0", n/2)
	dir := b.TempDir()
	v1File, v2File := filepath.Join(dir, "v1.yaml"), filepath.Join(dir, "v2.yaml")
	must(b, os.WriteFile(v1File, []byte(v1), 0o644))
	must(b, os.WriteFile(v2File, []byte(v2), 0o644))

	// Baseline 1: a bare server-side apply, nothing validated, recorded or waited for.
	nsBare := cluster.Namespace(b)
	r.bare = timed(b, kubectl, "apply", "--server-side", "-f", v1File, "-n", nsBare).took
	// Baseline 2: apply, then wait for every rollout.
	nsStatus := cluster.Namespace(b)
	r.applyStatus = timed(b, kubectl, "apply", "--server-side", "-f", v1File, "-n", nsStatus).took +
		timed(b, kubectl, "rollout", "status", "-f", v1File, "-n", nsStatus, "--timeout", "15m").took

	// rollguard: validated, recorded, applied and tracked until every workload is healthy.
	nsR := cluster.Namespace(b)
	dep := timed(b, rollguard, "deploy", "-f", v1File, "-n", nsR, "--app", "scale", "--timeout", "15m", "-o", "json")
	r.rollguard, r.rssDeploy, r.rgCPU = dep.took, dep.rss, dep.cpu
	var applied struct{ AppliedAt time.Time }
	if err := json.Unmarshal(dep.stdout, &applied); err != nil {
		b.Fatalf("rollguard's report: %v\n%s", err, dep.stdout)
	}
	r.rgApplied = applied.AppliedAt.Sub(dep.start)

	// Baseline 3: kubectl's rollback of the broken variant, every workload undone.
	nsK := cluster.Namespace(b)
	timed(b, kubectl, "apply", "--server-side", "-f", v1File, "-n", nsK)
	timed(b, kubectl, "rollout", "status", "-f", v1File, "-n", nsK, "--timeout", "15m")
	timed(b, kubectl, "apply", "--server-side", "-f", v2File, "-n", nsK)
	r.undo = timed(b, kubectl, "rollout", "undo", "-f", v2File, "-n", nsK).took
	r.undoStatus = r.undo + timed(b, kubectl, "rollout", "status", "-f", v1File, "-n", nsK, "--timeout", "15m").took

	// rollguard on the broken variant: it reports the broken workload and rolls the release back.
	brokenName := fmt.Sprintf("app-%04d", n/2)
	signal := watchSignal(b, nsR, brokenName)
	bad := runWant(b, 1, rollguard, "deploy", "-f", v2File, "-n", nsR, "--app", "scale", "--timeout", "15m", "-o", "json")
	r.rssRollback = bad.rss
	var rep struct {
		Workloads []struct {
			Name, Status, Reason string
			DetectedAt           time.Time
		}
		Rollback *struct {
			Outcome               string
			StartedAt, FinishedAt time.Time
		}
	}
	if err := json.Unmarshal(bad.stdout, &rep); err != nil {
		b.Fatalf("rollguard's report: %v\n%s", err, bad.stdout)
	}
	for _, w := range rep.Workloads {
		if w.Name == brokenName {
			r.brokenReason = w.Reason
			select {
			case at := <-signal:
				r.signalToReport = w.DetectedAt.Sub(at)
			default:
				b.Fatalf("the pods of %s never showed an image-pull failure", brokenName)
			}
		}
	}
	if rep.Rollback == nil || rep.Rollback.Outcome != "succeeded" {
		b.Fatalf("rollback not proven healthy: %+v\n%s", rep.Rollback, bad.stderr)
	}
	r.rollback = rep.Rollback.FinishedAt.Sub(rep.Rollback.StartedAt)
	fmt.Fprintf(os.Stderr, "size %d: bare %.1fs, apply+status %.1fs, rollguard %.1fs; broken %s reported %.1fs after its pods' signal; rollback %.1fs, undo %.1fs (+status %.1fs); RSS %d/%d MB; load %s -> %s\n",
		n, r.bare.Seconds(), r.applyStatus.Seconds(), r.rollguard.Seconds(), r.brokenReason, r.signalToReport.Seconds(),
		r.rollback.Seconds(), r.undo.Seconds(), r.undoStatus.Seconds(), r.rssDeploy>>10, r.rssRollback>>10, r.load, loadavg())
	return r
}

// watchSignal returns a channel that receives when a pod of the named Deployment first shows its image
// pull failing (the kwok stage's waiting reason), by the same clock rollguard stamps its verdicts with.
func watchSignal(b *testing.B, ns, app string) <-chan time.Time {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	w, err := cluster.Client().CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		b.Fatal(err)
	}
	out := make(chan time.Time, 1)
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				return
			}
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			for _, cs := range pod.Status.ContainerStatuses {
				if cs.State.Waiting != nil && (strings.Contains(cs.State.Waiting.Reason, "ImagePull") || cs.State.Waiting.Reason == "ErrImagePull") {
					out <- time.Now()
					return
				}
			}
		}
	}()
	return out
}

type result struct {
	start          time.Time
	took, cpu      time.Duration // wall clock; user + system CPU
	rss            int64         // KiB
	stdout, stderr []byte
}

// timed runs a command that must succeed.
func timed(b *testing.B, bin string, args ...string) result { return runWant(b, 0, bin, args...) }

// runWant runs a command that must exit with code want, and measures it.
func runWant(b *testing.B, want int, bin string, args ...string) result {
	b.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	if code != want {
		tail := stderr.String()
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		b.Fatalf("%s %s: exit %d, want %d (%v)\n%s", filepath.Base(bin), strings.Join(args, " "), code, want, err, tail)
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return result{start: start, took: took, cpu: cpu, rss: rss, stdout: stdout.Bytes(), stderr: stderr.Bytes()}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
