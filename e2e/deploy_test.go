package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDeployHealthyRelease(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	svc := "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n"
	r := rollguard(t, svc+"---\n"+app{}.yaml(), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "2m", "--change-cause", "release 1.0.0")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep := parseReport(t, r)
	if rep.Outcome != "succeeded" || len(rep.Workloads) != 1 || rep.Workloads[0].Status != "healthy" {
		t.Fatalf("report = %+v, want one healthy workload and outcome succeeded", rep)
	}
	for _, ts := range []string{rep.AppliedAt, rep.FinishedAt, rep.Workloads[0].DetectedAt} {
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.Contains(ts, ".") {
			t.Errorf("timestamp %q is not RFC 3339 with milliseconds", ts)
		}
	}
	d, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.ReadyReplicas != 3 {
		t.Errorf("ready replicas = %d, want 3", d.Status.ReadyReplicas)
	}
	if got := d.Annotations["kubernetes.io/change-cause"]; got != "release 1.0.0" {
		t.Errorf("change-cause = %q, want %q", got, "release 1.0.0")
	}
	if _, err := cluster.Client().CoreV1().Services(ns).Get(context.Background(), "web", metav1.GetOptions{}); err != nil {
		t.Errorf("service not applied: %v", err)
	}
}

// TestDeployFailureReasons deploys a healthy v1, then a broken v2, and checks rollguard names the reason with
// evidence. Every case runs with a 5-minute timeout: a reason other than Timeout proves the failure was
// detected long before it.
func TestDeployFailureReasons(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		setup    string // objects deployed before v1 (quota, limit range)
		v1, v2   app
		flags    []string
		reason   string
		message  string // fragment of the one-line message
		evidence string // fragment of some evidence line
	}{
		{
			name:     "image pull",
			v2:       app{image: "registry.example.com/web:2.0.0", scenario: "image-pull-failure"},
			reason:   "ImagePullFailed",
			message:  "image missing",
			evidence: "ErrImagePull", // "not found" is definitive: no need to wait for the back-off
		},
		{
			name: "registry unreachable past the pull grace",
			v2: app{image: "registry.example.com/web:2.0.0", scenario: "pull-blip",
				annotations: map[string]string{"sandbox.rollguard.dev/pull-recovers-after": "10m"}},
			flags:    []string{"--image-pull-grace", "3s"},
			reason:   "ImagePullFailed",
			message:  "registry unreachable",
			evidence: "i/o timeout",
		},
		{
			name:     "crash loop",
			v2:       app{image: "registry.example.com/web:2.0.0", scenario: "crash-loop"},
			reason:   "CrashLoop",
			message:  "code 1",
			evidence: "CrashLoopBackOff",
		},
		{
			name:     "config error",
			v2:       app{image: "registry.example.com/web:2.0.0", scenario: "config-error"},
			reason:   "ConfigError",
			message:  "not found",
			evidence: "CreateContainerConfigError",
		},
		{
			name: "readiness",
			// v1's probe makes its start-up the history, so the wait is short (a probe-less v1 sets none).
			v1:      app{readinessProbe: true},
			v2:      app{image: "registry.example.com/web:2.0.0", scenario: "never-ready", readinessProbe: true},
			reason:  "ReadinessFailed",
			message: "ready",
			// The probe's own Unhealthy event can come after the verdict on a loaded machine (kwok writes the
			// start events first, as a kubelet does); the container state is always there.
			evidence: "ready=false",
		},
		{
			name:     "quota",
			setup:    "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: pods\nspec:\n  hard:\n    pods: \"3\"\n",
			v2:       app{image: "registry.example.com/web:2.0.0"},
			flags:    []string{"--pod-preflight=false"}, // tracking is under test; TestPodsRefusedAtCreation covers the preflight
			reason:   "QuotaExceeded",
			message:  "ResourceQuota",
			evidence: "exceeded quota",
		},
		{
			name:     "limit range",
			setup:    "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: cpu\nspec:\n  limits:\n  - type: Container\n    max:\n      cpu: 500m\n",
			v1:       app{cpu: "100m"},
			v2:       app{image: "registry.example.com/web:2.0.0", cpu: "1"},
			flags:    []string{"--pod-preflight=false"}, // tracking is under test; TestPodsRefusedAtCreation covers the preflight
			reason:   "LimitRangeViolation",
			message:  "cpu",
			evidence: "maximum cpu usage",
		},
		{
			name:     "missing service account",
			v2:       app{image: "registry.example.com/web:2.0.0", serviceAccount: "deployer-missing"},
			flags:    []string{"--pod-preflight=false"}, // tracking is under test; TestPodsRefusedAtCreation covers the preflight
			reason:   "PermissionDenied",
			message:  "deployer-missing",
			evidence: "not found",
		},
		{
			name:     "unschedulable",
			v2:       app{image: "registry.example.com/web:2.0.0", cpu: "64"}, // default grace: the sandbox cannot grow
			reason:   "Unschedulable",
			message:  "Insufficient cpu",
			evidence: "Unschedulable",
		},
		{
			name:     "progress deadline",
			v2:       app{image: "registry.example.com/web:2.0.0", scenario: "never-ready", progressDeadine: 2},
			reason:   "ProgressDeadlineExceeded",
			message:  "progress",
			evidence: "ProgressDeadlineExceeded",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			deploy := func(manifest string, extra ...string) result {
				// Diagnosis is under test here; rollback has its own tests.
				args := append([]string{"deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "5m", "--on-failure", "none"}, extra...)
				return rollguard(t, manifest, args...)
			}
			if tc.setup != "" {
				if r := deploy(tc.setup); r.code != 0 {
					t.Fatalf("setup: exit %d\n%s", r.code, r.stderr)
				}
			}
			if r := deploy(tc.v1.yaml()); r.code != 0 {
				t.Fatalf("v1: exit %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			r := deploy(tc.v2.yaml(), tc.flags...)
			if r.code != 2 {
				t.Fatalf("v2: exit %d, want 2 (failed, not recovered)\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			rep := parseReport(t, r)
			if rep.Outcome != "failed" || len(rep.Workloads) != 1 {
				t.Fatalf("report = %+v, want outcome failed with one workload", rep)
			}
			w := rep.Workloads[0]
			if w.Status != "failed" || w.Reason != tc.reason {
				t.Fatalf("workload %s: status %q reason %q (%s), want failed %s", w.Name, w.Status, w.Reason, w.Message, tc.reason)
			}
			if !strings.Contains(w.Message, tc.message) {
				t.Errorf("message %q lacks %q", w.Message, tc.message)
			}
			if w.Fix == "" {
				t.Errorf("no suggested fix")
			}
			if w.DetectedAt == "" {
				t.Errorf("no detectedAt")
			}
			var all []string
			for _, e := range w.Evidence {
				all = append(all, e.Object+": "+e.Text)
			}
			if !strings.Contains(strings.Join(all, "\n"), tc.evidence) {
				t.Errorf("evidence lacks %q:\n%s", tc.evidence, strings.Join(all, "\n"))
			}
		})
	}
}

// TestDeployTimeout: a rollout that is merely slow is reported as Timeout when --timeout passes.
func TestDeployTimeout(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	v := app{scenario: "slow-ready", annotations: map[string]string{"sandbox.rollguard.dev/ready-after": "10m"}}
	r := rollguard(t, v.yaml(), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "3s", "--on-failure", "none")
	if r.code != 2 {
		t.Fatalf("exit %d, want 2\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep := parseReport(t, r)
	if w := rep.Workloads[0]; w.Reason != "Timeout" {
		t.Fatalf("reason %q (%s), want Timeout", w.Reason, w.Message)
	}
}

// TestDeployOtherWorkloads covers StatefulSets and DaemonSets, healthy and failing.
func TestDeployOtherWorkloads(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		v1, v2 app
		reason string
	}{
		{"statefulset crash loop", app{kind: "StatefulSet", replicas: 2}, app{kind: "StatefulSet", replicas: 2, image: "registry.example.com/web:2.0.0", scenario: "crash-loop"}, "CrashLoop"},
		{"daemonset image pull", app{kind: "DaemonSet"}, app{kind: "DaemonSet", image: "registry.example.com/web:2.0.0", scenario: "image-pull-failure"}, "ImagePullFailed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			if r := rollguard(t, tc.v1.yaml(), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "3m"); r.code != 0 {
				t.Fatalf("v1: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			r := rollguard(t, tc.v2.yaml(), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "5m", "--on-failure", "none")
			if r.code != 2 {
				t.Fatalf("v2: exit %d, want 2\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if w := parseReport(t, r).Workloads[0]; w.Reason != tc.reason {
				t.Fatalf("reason %q (%s), want %s", w.Reason, w.Message, tc.reason)
			}
		})
	}
}

// TestStatusOfForeignRollout: `rollguard status` follows a rollout rollguard did not start.
func TestStatusOfForeignRollout(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	if r := rollguard(t, app{}.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m"); r.code != 0 {
		t.Fatalf("v1: exit %d\n%s", r.code, r.stderr)
	}
	if r := rollguard(t, "", "status", "deploy/web", "-n", ns, "--timeout", "1m"); r.code != 0 {
		t.Fatalf("status of healthy: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	ctx := context.Background()
	deps := cluster.Client().AppsV1().Deployments(ns)
	d, err := deps.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Labels["sandbox.rollguard.dev/scenario"] = "image-pull-failure"
	d.Spec.Template.Spec.Containers[0].Image = "registry.example.com/web:2.0.0"
	if _, err := deps.Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := rollguard(t, "", "status", "deployment/web", "-n", ns, "-o", "json", "--timeout", "5m")
	if r.code != 2 {
		t.Fatalf("status of broken: exit %d, want 2\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if w := parseReport(t, r).Workloads[0]; w.Reason != "ImagePullFailed" {
		t.Fatalf("reason %q (%s), want ImagePullFailed", w.Reason, w.Message)
	}
}

// migrationJob is a Job the release ships (a database migration); failing selects the sandbox's
// job-failure scenario.
func migrationJob(name string, failing bool) string {
	labels := "        app: migrate\n"
	if failing {
		labels += "        sandbox.rollguard.dev/scenario: job-failure\n"
	}
	return "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: " + name + "\nspec:\n  backoffLimit: 0\n  template:\n    metadata:\n      labels:\n" +
		labels + "    spec:\n      restartPolicy: Never\n      containers:\n      - name: migrate\n        image: registry.example.com/web-migrate:1.0.0\n"
}

// TestReleaseWithMigrationJob: a Job in the release is tracked to completion; a release whose migration
// fails is reported JobFailed and rolled back (its Job removed, the workload restored).
func TestReleaseWithMigrationJob(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	r := rollguard(t, migrationJob("migrate-1", false)+"---\n"+app{}.yaml(), "deploy", "-f", "-", "-n", ns, "--app", "web", "-o", "json", "--timeout", "2m")
	if r.code != 0 {
		t.Fatalf("v1: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if rep := parseReport(t, r); len(rep.Workloads) != 2 {
		t.Fatalf("v1 tracked %d workloads, want the Job and the Deployment: %+v", len(rep.Workloads), rep.Workloads)
	}
	r = rollguard(t, migrationJob("migrate-2", true)+"---\n"+app{image: "registry.example.com/web:2.0.0"}.yaml(),
		"deploy", "-f", "-", "-n", ns, "--app", "web", "-o", "json", "--timeout", "2m")
	if r.code != 1 {
		t.Fatalf("v2: exit %d, want 1 (rolled back)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var failed bool
	for _, w := range parseReport(t, r).Workloads {
		if w.Kind == "Job" && w.Reason == "JobFailed" && strings.Contains(w.Message, "BackoffLimitExceeded") {
			failed = true
		}
	}
	if !failed {
		t.Errorf("no JobFailed verdict for migrate-2:\n%s", r.stdout)
	}
	ctx := context.Background()
	if _, err := cluster.Client().BatchV1().Jobs(ns).Get(ctx, "migrate-2", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the failed release's Job is still there (err %v)", err)
	}
	if img := templateImage(t, ns); img != "registry.example.com/web:1.0.0" {
		t.Errorf("web runs %s after rollback, want 1.0.0", img)
	}
}
