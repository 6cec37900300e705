package rollout

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// bumpy is a healthy release that looks broken for a while (sandbox/stages/bumpy.yaml, slow-ready).
type bumpy struct {
	name     string
	replicas int
	// v1Flags deploy the first release; scenario and annotations shape both releases' pods.
	v1Flags  []string
	scenario string
	// annotations are the pod template's; a value "evict-in" is replaced by a time 3 s after the apply.
	annotations map[string]string
	probe       string // periodSeconds × failureThreshold of the readiness probe, "2x3"
}

var bumpies = []bumpy{
	// The slow starter: 25 s to ready, probe 2 s × 3, and a previous revision exactly as slow.
	{name: "slow starter with matching history", replicas: 1, v1Flags: []string{"--readiness-slack", "1m"}, scenario: "slow-ready",
		annotations: map[string]string{"sandbox.rollguard.dev/ready-after": "25s"}, probe: "2x3"},
	{name: "registry blip that recovers", replicas: 3, scenario: "pull-blip",
		annotations: map[string]string{"sandbox.rollguard.dev/pull-recovers-after": "8s"}, probe: "1x3"},
	{name: "one early restart", replicas: 3, scenario: "restart-once", probe: "1x3"},
	{name: "an evicted pod", replicas: 3, scenario: "evicted", annotations: map[string]string{"sandbox.rollguard.dev/evict-before": "evict-in"}, probe: "1x3"},
}

func (bp bumpy) manifest(image string) string {
	var ann strings.Builder
	for k, v := range bp.annotations {
		if v == "evict-in" {
			v = time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(&ann, "        %s: %q\n", k, v)
	}
	var period, failures int
	fmt.Sscanf(bp.probe, "%dx%d", &period, &failures)
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: %d
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
        sandbox.rollguard.dev/scenario: %s
      annotations:
%s    spec:
      containers:
      - name: web
        image: %s
        readinessProbe:
          httpGet:
            path: /healthz
            port: 8080
          periodSeconds: %d
          failureThreshold: %d
`, bp.replicas, bp.scenario, ann.String(), image, period, failures)
}

// BenchmarkPrecision: healthy-but-bumpy releases, each deployed with rollguard's defaults (automatic
// rollback on) and with kubectl apply + rollout status. Every one must be reported healthy; the table shows
// rollguard's time beside kubectl's, so the price of not failing them is visible.
func BenchmarkPrecision(b *testing.B) {
	for i := 0; i < b.N; i++ {
		rows := runAll(bumpies, func(bp bumpy) timing {
			nsR, nsK := cluster.Namespace(b), cluster.Namespace(b)
			for _, ns := range []string{nsR, nsK} {
				args := append([]string{"deploy", "-f", "-", "-n", ns, "--timeout", "3m"}, bp.v1Flags...)
				must(b, runCmd(b, bp.manifest("registry.example.com/web:1.0.0"), rollguard, args...))
			}
			t := timing{name: bp.name}
			start := time.Now()
			out := runCmd(b, bp.manifest("registry.example.com/web:2.0.0"), rollguard, "deploy", "-f", "-", "-n", nsR, "--timeout", "3m", "-o", "json")
			t.rollguard = time.Since(start)
			t.verdict = outcomeOf(out)
			start = time.Now()
			must(b, runCmd(b, bp.manifest("registry.example.com/web:2.0.0"), kubectl, "apply", "-f", "-", "-n", nsK))
			must(b, runCmd(b, "", kubectl, "rollout", "status", "deployment/web", "-n", nsK, "--timeout=3m"))
			t.kubectl = time.Since(start)
			return t
		})
		reportBumpy(b, "", rows)
	}
}

// reportBumpy prints the table of healthy-but-bumpy releases (prefix names where they ran, "" the
// sandbox) and counts the false failures: each of them must be reported healthy.
func reportBumpy(b *testing.B, prefix string, rows []timing) {
	falseFailures := 0
	for _, t := range rows {
		if t.verdict != "succeeded" {
			falseFailures++
			b.Errorf("%s: rollguard said %s, want succeeded (healthy)", t.name, t.verdict)
		}
	}
	report(b, prefix+"healthy-but-bumpy releases (apply → healthy reported)", "rollguard deploy", "kubectl apply + rollout status", sortTimings(rows))
	fmt.Fprintf(os.Stderr, "%sfalse failures: %d of %d\n", prefix, falseFailures, len(rows))
	b.ReportMetric(float64(falseFailures), "false-failures")
}
