// Package rollout benchmarks rollguard against the kubectl pipeline it replaces, on the same sandbox
// cluster in the same run: time from applying a broken release to a verdict (rollguard deploy vs kubectl
// apply + rollout status --timeout=60s), from a broken apply to a healthy rollback (rollguard deploy vs
// the seed pipeline: rollout status --timeout=60s, rollout undo, rollout status), and, for precision, from
// applying a healthy-but-bumpy release to its healthy verdict (precision_test.go).
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 60m ./bench/rollout/
package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollguard/rollguard/bench/benchenv"
	"github.com/rollguard/rollguard/sandbox"
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
	env, err := benchenv.Start(context.Background(), "rollguard-bench-", sandbox.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	rollguard, kubectl, cluster = env.Rollguard, env.Kubectl, env.Cluster
	defer stopRealNode()
	return m.Run()
}

// scenario is one way a release breaks.
type scenario struct {
	name  string
	setup string // objects the namespace has before v1
	v2    string // extra lines of the broken pod template / spec, see manifest
}

var scenarios = []scenario{
	{name: "ImagePullFailed", v2: "scenario: image-pull-failure"},
	{name: "CrashLoop", v2: "scenario: crash-loop"},
	{name: "ConfigError", v2: "scenario: config-error"},
	{name: "ReadinessFailed", v2: "scenario: never-ready"},
	{name: "QuotaExceeded", setup: "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: pods\nspec:\n  hard:\n    pods: \"3\"\n"},
	{name: "LimitRangeViolation", setup: "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: cpu\nspec:\n  limits:\n  - type: Container\n    max:\n      cpu: 500m\n", v2: "cpu: \"1\""},
	{name: "PermissionDenied", v2: "serviceAccount: missing"},
	{name: "Unschedulable", v2: "cpu: \"64\""},
}

// manifest is the web Deployment; broken adds the scenario's change.
func manifest(image, broken string) string {
	labels, sa, res := "", "", "\n        resources:\n          requests:\n            cpu: 100m\n          limits:\n            cpu: 100m"
	switch {
	case strings.HasPrefix(broken, "scenario: "):
		labels = "\n        sandbox.rollguard.dev/scenario: " + strings.TrimPrefix(broken, "scenario: ")
	case strings.HasPrefix(broken, "serviceAccount: "):
		sa = "\n      serviceAccountName: " + strings.TrimPrefix(broken, "serviceAccount: ")
	case strings.HasPrefix(broken, "cpu: "):
		cpu := strings.TrimPrefix(broken, "cpu: ")
		res = "\n        resources:\n          requests:\n            cpu: " + cpu + "\n          limits:\n            cpu: " + cpu
	}
	probe := "\n        readinessProbe:\n          httpGet:\n            path: /healthz\n            port: 8080\n          periodSeconds: 1\n          failureThreshold: 3"
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web` + labels + `
    spec:` + sa + `
      containers:
      - name: web
        image: ` + image + res + probe + "\n"
}

// prepare makes a namespace with the scenario's setup and a healthy v1 (deployed with rollguard).
func prepare(b *testing.B, sc scenario) string {
	ns := cluster.Namespace(b)
	if sc.setup != "" {
		must(b, runCmd(b, sc.setup, rollguard, "deploy", "-f", "-", "-n", ns, "--timeout", "1m"))
	}
	must(b, runCmd(b, manifest("registry.example.com/web:1.0.0", ""), rollguard, "deploy", "-f", "-", "-n", ns, "--timeout", "2m"))
	return ns
}

// release deletes an iteration's namespaces and waits until they are gone: their pods hold the sandbox's
// two nodes' CPU, and the next iteration's releases would otherwise be Unschedulable (-count=2 was void).
func release(b *testing.B, namespaces ...string) {
	must(b, runCmd(b, "", kubectl, append([]string{"delete", "namespace", "--wait", "--timeout=2m"}, namespaces...)...))
}

type timing struct {
	name               string
	rollguard, kubectl time.Duration
	verdict            string
}

// BenchmarkTimeToVerdict: rollguard deploy vs kubectl apply + rollout status --timeout=60s on each
// broken release. All scenarios run at once, each in its own namespaces.
func BenchmarkTimeToVerdict(b *testing.B) {
	for i := 0; i < b.N; i++ {
		results := parallel(b, func(sc scenario) timing {
			nsR, nsK := prepare(b, sc), prepare(b, sc)
			broken := manifest("registry.example.com/web:2.0.0", sc.v2)
			t := timing{name: sc.name}
			start := time.Now()
			out := runCmd(b, broken, rollguard, "deploy", "-f", "-", "-n", nsR, "--timeout", "60s", "--on-failure", "none", "-o", "json")
			t.rollguard = time.Since(start)
			t.verdict = reasonOf(out)
			if d, ok := afterApply(out); ok {
				t.verdict += fmt.Sprintf(" (%.1f s after the apply)", d.Seconds())
			}
			start = time.Now()
			must(b, runCmd(b, broken, kubectl, "apply", "-f", "-", "-n", nsK))
			runCmd(b, "", kubectl, "rollout", "status", "deployment/web", "-n", nsK, "--timeout=60s")
			t.kubectl = time.Since(start)
			release(b, nsR, nsK)
			return t
		})
		report(b, "time to verdict (broken apply → failure reported)", "rollguard deploy", "kubectl apply + rollout status --timeout=60s", results)
	}
}

// BenchmarkBrokenToHealthyRollback: rollguard deploy (rolls back by itself) vs the seed pipeline.
func BenchmarkBrokenToHealthyRollback(b *testing.B) {
	for i := 0; i < b.N; i++ {
		results := parallel(b, func(sc scenario) timing {
			nsR, nsK := prepare(b, sc), prepare(b, sc)
			broken := manifest("registry.example.com/web:2.0.0", sc.v2)
			t := timing{name: sc.name}
			start := time.Now()
			out := runCmd(b, broken, rollguard, "deploy", "-f", "-", "-n", nsR, "--timeout", "60s", "-o", "json")
			t.rollguard = time.Since(start)
			t.verdict = outcomeOf(out)
			start = time.Now()
			must(b, runCmd(b, broken, kubectl, "apply", "-f", "-", "-n", nsK))
			runCmd(b, "", kubectl, "rollout", "status", "deployment/web", "-n", nsK, "--timeout=60s")
			must(b, runCmd(b, "", kubectl, "rollout", "undo", "deployment/web", "-n", nsK))
			must(b, runCmd(b, "", kubectl, "rollout", "status", "deployment/web", "-n", nsK, "--timeout=120s"))
			t.kubectl = time.Since(start)
			release(b, nsR, nsK)
			return t
		})
		report(b, "broken apply → healthy rollback", "rollguard deploy (auto-rollback)", "seed pipeline (rollout status 60s, undo, status)", results)
	}
}

func parallel(b *testing.B, fn func(scenario) timing) []timing {
	return runAll(scenarios, fn)
}

// runAll runs fn on every item at once and returns the timings sorted by name.
func runAll[T any](items []T, fn func(T) timing) []timing {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var out []timing
	for _, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := fn(it)
			mu.Lock()
			out = append(out, t)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return sortTimings(out)
}

func sortTimings(ts []timing) []timing {
	sort.Slice(ts, func(i, j int) bool { return ts[i].name < ts[j].name })
	return ts
}

func report(b *testing.B, title, rg, base string, ts []timing) {
	var sumR, sumK time.Duration
	fmt.Fprintf(os.Stderr, "\n%s\n| scenario | %s | %s | ratio | rollguard said |\n|---|---|---|---|---|\n", title, rg, base)
	for _, t := range ts {
		fmt.Fprintf(os.Stderr, "| %s | %.1f s | %.1f s | %.0f× | %s |\n", t.name, t.rollguard.Seconds(), t.kubectl.Seconds(), t.kubectl.Seconds()/t.rollguard.Seconds(), t.verdict)
		sumR += t.rollguard
		sumK += t.kubectl
	}
	n := float64(len(ts))
	b.ReportMetric(sumR.Seconds()/n, "rollguard-s/op")
	b.ReportMetric(sumK.Seconds()/n, "baseline-s/op")
	b.ReportMetric(sumK.Seconds()/sumR.Seconds(), "speedup")
}

type cmdResult struct {
	out  string
	err  error
	args []string
}

func runCmd(b *testing.B, stdin, bin string, args ...string) cmdResult {
	return runOn(cluster, stdin, bin, args...)
}

// runOn runs a command against the given sandbox cluster.
func runOn(c *sandbox.Cluster, stdin, bin string, args ...string) cmdResult {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	return cmdResult{out: string(out), err: err, args: args}
}

// must reports a failed step; it runs on scenario goroutines, where b.Fatal is not allowed.
func must(b *testing.B, r cmdResult) {
	if r.err != nil {
		b.Errorf("%v: %v\n%s", r.args, r.err, r.out)
	}
}

// refusedBy finds the reason in a pod preflight's refusal (exit 3, nothing applied), which has no report.
var refusedBy = regexp.MustCompile(`would refuse the pods of \S+: (\w+):`)

func reasonOf(r cmdResult) string {
	var rep struct {
		Message   string
		Workloads []struct{ Reason string } `json:"workloads"`
	}
	_ = json.Unmarshal([]byte(r.out), &rep)
	if len(rep.Workloads) > 0 {
		return rep.Workloads[0].Reason
	}
	// A refused preflight has no workloads; its reason is in the error result's message (or on stderr).
	text := rep.Message
	var exit *exec.ExitError
	if errors.As(r.err, &exit) {
		text += "\n" + string(exit.Stderr)
	}
	if m := refusedBy.FindStringSubmatch(text); m != nil {
		return "preflight (exit 3): " + m[1]
	}
	return "?"
}

// afterApply is how long after its apply rollguard saw the verdict (its report's appliedAt and
// detectedAt): the time-to-verdict without loading, validating and the preflights, which a loaded machine
// slows most.
func afterApply(r cmdResult) (time.Duration, bool) {
	var rep struct {
		AppliedAt time.Time `json:"appliedAt"`
		Workloads []struct {
			DetectedAt time.Time `json:"detectedAt"`
		} `json:"workloads"`
	}
	if json.Unmarshal([]byte(r.out), &rep) != nil || rep.AppliedAt.IsZero() || len(rep.Workloads) == 0 || rep.Workloads[0].DetectedAt.IsZero() {
		return 0, false
	}
	return rep.Workloads[0].DetectedAt.Sub(rep.AppliedAt), true
}

func outcomeOf(r cmdResult) string {
	var rep struct{ Outcome string }
	if json.Unmarshal([]byte(r.out), &rep) != nil || rep.Outcome == "error" {
		if reason := reasonOf(r); reason != "?" {
			return "nothing applied: " + reason
		}
		return "?"
	}
	return rep.Outcome
}
