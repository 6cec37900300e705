package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/release"
)

// Secret values that must never appear in anything rollguard prints.
const (
	canaryV1 = "canary-v1-8d1f6b2e"
	canaryV2 = "canary-v2-4c7a9e03"
)

// releaseV1 is a healthy release: a ConfigMap, a Secret and a Deployment using both.
func releaseV1() string {
	return `apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  VERSION: "1"
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
stringData:
  TOKEN: ` + canaryV1 + `
---
` + app{}.yaml()
}

// releaseV2Broken changes the ConfigMap and Secret, adds a Service, and ships an image that cannot be pulled.
func releaseV2Broken() string {
	return `apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  VERSION: "2"
  NEW_KEY: added
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
stringData:
  TOKEN: ` + canaryV2 + `
---
apiVersion: v1
kind: Service
metadata:
  name: web-v2
spec:
  selector:
    app: web
  ports:
  - port: 80
---
` + app{image: "registry.example.com/web:2.0.0", scenario: "image-pull-failure"}.yaml()
}

// deployV1 puts the healthy release in place.
func deployV1(t *testing.T, ns string) {
	t.Helper()
	if r := rollguard(t, releaseV1(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m"); r.code != 0 {
		t.Fatalf("v1: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// assertV1 checks the namespace is exactly as release v1 left it, and healthy.
func assertV1(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	c := cluster.Client()
	cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, "web-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["VERSION"] != "1" || cm.Data["NEW_KEY"] != "" {
		t.Errorf("ConfigMap not restored: %v", cm.Data)
	}
	sec, err := c.CoreV1().Secrets(ns).Get(ctx, "web-secret", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sec.Data["TOKEN"]) != canaryV1 {
		t.Errorf("Secret not restored")
	}
	if _, err := c.CoreV1().Services(ns).Get(ctx, "web-v2", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Service web-v2 created by the failed release still exists (err %v)", err)
	}
	d, err := c.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/web:1.0.0" {
		t.Errorf("Deployment image %s, want v1's", img)
	}
	if _, broken := d.Spec.Template.Labels["sandbox.rollguard.dev/scenario"]; broken {
		t.Errorf("Deployment template still has the broken release's label")
	}
	if !available(d) {
		t.Errorf("Deployment not healthy after rollback: %+v", d.Status)
	}
}

func available(d *appsv1.Deployment) bool {
	return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == *d.Spec.Replicas &&
		d.Status.Replicas == *d.Spec.Replicas && d.Status.AvailableReplicas == *d.Spec.Replicas
}

// noSecrets checks no Secret value leaked into anything rollguard printed.
func noSecrets(t *testing.T, outputs ...string) {
	t.Helper()
	for _, o := range outputs {
		for _, canary := range []string{canaryV1, canaryV2} {
			if strings.Contains(o, canary) {
				t.Errorf("a Secret value was printed:\n%s", o)
			}
		}
	}
}

func TestBrokenReleaseIsRolledBackHealthy(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployV1(t, ns)
	r := rollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "5m")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (rolled back healthy)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var rep struct {
		Outcome  string `json:"outcome"`
		Rollback struct {
			Outcome string `json:"outcome"`
		} `json:"rollback"`
	}
	if err := jsonUnmarshal(r.stdout, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != "rolled_back" || rep.Rollback.Outcome != "succeeded" {
		t.Errorf("outcome %q, rollback %q; want rolled_back, succeeded", rep.Outcome, rep.Rollback.Outcome)
	}
	assertV1(t, ns)
	noSecrets(t, r.stdout, r.stderr)
}

func TestRollbackApprovedBySecondProcess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		decision string
		code     int
	}{{"approve", 1}, {"reject", 2}} {
		t.Run(tc.decision, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			deployV1(t, ns)
			wait := startRollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--on-failure", "approve", "--approval-timeout", "5m", "--timeout", "5m")
			id := waitForOutcome(t, ns, "web", release.PendingApproval)
			d := rollguard(t, "", tc.decision, id, "-n", ns)
			if d.code != 0 {
				t.Fatalf("%s: exit %d\n%s", tc.decision, d.code, d.stderr)
			}
			r := wait()
			if r.code != tc.code {
				t.Fatalf("deploy exit %d, want %d\n%s\n%s", r.code, tc.code, r.stdout, r.stderr)
			}
			rec := record(t, ns, id)
			if rec.Approval == nil || rec.Approval.By == "" || rec.Approval.At.IsZero() {
				t.Errorf("decision not recorded with who and when: %+v", rec.Approval)
			}
			if tc.decision == "approve" {
				assertV1(t, ns)
				if rec.Outcome != release.RolledBack {
					t.Errorf("record outcome %s, want rolled_back", rec.Outcome)
				}
			} else if rec.Outcome != release.Rejected {
				t.Errorf("record outcome %s, want rejected", rec.Outcome)
			}
		})
	}
}

func TestApprovalTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		action string
		code   int
	}{{"rollback", 1}, {"reject", 2}} {
		t.Run(tc.action, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			deployV1(t, ns)
			r := rollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--on-failure", "approve",
				"--approval-timeout", "2s", "--approval-timeout-action", tc.action, "--timeout", "5m")
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", r.code, tc.code, r.stdout, r.stderr)
			}
			if tc.action == "rollback" {
				assertV1(t, ns)
			}
		})
	}
}

func TestHoldThenRollbackInLaterProcess(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployV1(t, ns)
	r := rollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--on-failure", "hold", "-o", "json", "--timeout", "5m")
	if r.code != 5 {
		t.Fatalf("exit %d, want 5 (held for approval)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if rep := parseReport(t, r); rep.Outcome != "pending_approval" {
		t.Fatalf("outcome %q, want pending_approval", rep.Outcome)
	}
	id := waitForOutcome(t, ns, "web", release.PendingApproval)
	rb := rollguard(t, "", "rollback", id, "-n", ns, "--timeout", "5m")
	if rb.code != 0 {
		t.Fatalf("rollback exit %d, want 0\n%s\n%s", rb.code, rb.stdout, rb.stderr)
	}
	assertV1(t, ns)
	noSecrets(t, r.stdout, r.stderr, rb.stdout, rb.stderr)
}

func TestConcurrentDeploysAreSerialized(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	slow := func(image string) string {
		return app{image: image, scenario: "slow-ready", annotations: map[string]string{"sandbox.rollguard.dev/ready-after": "2s"}}.yaml()
	}
	waitA := startRollguard(t, slow("registry.example.com/web:1.0.0"), "deploy", "-f", "-", "-n", ns, "--timeout", "2m")
	waitB := startRollguard(t, slow("registry.example.com/web:1.0.1"), "deploy", "-f", "-", "-n", ns, "--timeout", "2m")
	a, b := waitA(), waitB()
	if a.code != 0 || b.code != 0 {
		t.Fatalf("exits %d and %d, want 0 and 0\n%s\n%s", a.code, b.code, a.stderr, b.stderr)
	}
	recs := records(t, ns, "web")
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	first, second := recs[1], recs[0] // newest first
	if !second.CreatedAt.After(first.Timings.FinishedAt) && !second.CreatedAt.Equal(first.Timings.FinishedAt) {
		t.Errorf("runs overlapped: %s was recorded at %s, before %s finished at %s", second.ID, second.CreatedAt, first.ID, first.Timings.FinishedAt)
	}
}

func TestLockOfKilledRunExpires(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployV1(t, ns)
	killWhileTracking(t, ns, "3s")
	held := rollguard(t, releaseV1(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m", "--wait-for-lock", "0s")
	if held.code != 3 || !strings.Contains(held.stderr, "locked by") {
		t.Fatalf("with the dead run's lock still valid: exit %d, want 3 naming the holder\n%s", held.code, held.stderr)
	}
	r := rollguard(t, releaseV1(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m", "--wait-for-lock", "1m")
	if r.code != 0 {
		t.Fatalf("after the lock expired: exit %d, want 0\n%s", r.code, r.stderr)
	}
	assertV1(t, ns)
}

// TestKilledRunConverges kills rollguard with SIGKILL at every crash point of a failing deploy, then runs
// the same deploy again: each time the re-run finds the record, converges, and the namespace ends exactly
// as the last healthy release left it.
func TestKilledRunConverges(t *testing.T) {
	t.Parallel()
	for _, point := range crashpoint.Points {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			deployV1(t, ns)
			args := []string{"deploy", "-f", "-", "-n", ns, "--timeout", "5m", "--lock-ttl", "2s"}
			if strings.HasPrefix(point, "approval:") {
				args = append(args, "--on-failure", "approve")
			}
			killed := rollguardEnv(t, []string{"KUBECONFIG=" + cluster.Kubeconfig, crashpoint.Env + "=" + point}, releaseV2Broken(), args...)
			if killed.code != -1 || !strings.Contains(killed.stderr, crashpoint.Line(point)) {
				t.Fatalf("the run was not killed at its crash point %s: exit %d\n%s", point, killed.code, killed.stderr)
			}
			r := rollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--timeout", "5m", "--wait-for-lock", "1m", "-o", "json")
			if r.code != 1 {
				t.Fatalf("re-run: exit %d, want 1 (rolled back healthy)\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			assertV1(t, ns)
			noSecrets(t, r.stdout, r.stderr, killed.stdout, killed.stderr)
		})
	}
}

// startRollguard runs rollguard against the sandbox in the background; the returned func waits for it.
func startRollguard(t *testing.T, stdin string, args ...string) func() result {
	t.Helper()
	return startRollguardEnv(t, []string{"KUBECONFIG=" + cluster.Kubeconfig}, stdin, args...)
}

func store(t *testing.T, ns string) *release.Store {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &cluster.Kubeconfig
	flags.Namespace = &ns
	c, err := kube.Connect(context.Background(), flags)
	if err != nil {
		t.Fatal(err)
	}
	return release.NewStore(c)
}

func record(t *testing.T, ns, id string) *release.Record {
	t.Helper()
	r, err := store(t, ns).Get(context.Background(), ns, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func records(t *testing.T, ns, app string) []*release.Record {
	t.Helper()
	rs, err := store(t, ns).List(context.Background(), ns, app)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// waitForOutcome waits until app's newest record has the outcome, and returns its ID.
// waitForOutcome waits until the app's latest release has one of the outcomes and returns its ID.
func waitForOutcome(t *testing.T, ns, app string, outcomes ...release.Outcome) string {
	t.Helper()
	s := store(t, ns)
	var id string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		r, err := s.Latest(ctx, ns, app)
		if err != nil || r == nil {
			return false, nil
		}
		id = r.ID
		return slices.Contains(outcomes, r.Outcome), nil
	})
	if err != nil {
		t.Fatalf("release of %s never reached %v: %v", app, outcomes, err)
	}
	return id
}

// TestRollbackOfAdmissionFailures: when admission refused the new pods (quota, limit range, missing service
// account) the rollback must be judged on the restored revision, not on the refused one's lingering
// ReplicaFailure condition.
func TestRollbackOfAdmissionFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, setup string
		v1, v2      app
	}{
		{"quota", "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: pods\nspec:\n  hard:\n    pods: \"3\"\n",
			app{}, app{image: "registry.example.com/web:2.0.0"}},
		{"limit range", "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: cpu\nspec:\n  limits:\n  - type: Container\n    max:\n      cpu: 500m\n",
			app{cpu: "100m"}, app{image: "registry.example.com/web:2.0.0", cpu: "1"}},
		{"missing service account", "", app{}, app{image: "registry.example.com/web:2.0.0", serviceAccount: "ghost"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			if tc.setup != "" {
				if r := rollguard(t, tc.setup, "deploy", "-f", "-", "-n", ns, "--app", "limits", "--timeout", "1m"); r.code != 0 {
					t.Fatalf("setup: exit %d\n%s", r.code, r.stderr)
				}
			}
			if r := rollguard(t, tc.v1.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m"); r.code != 0 {
				t.Fatalf("v1: exit %d\n%s", r.code, r.stderr)
			}
			// The pod preflight would refuse v2 before anything changes; this test is about what comes after.
			r := rollguard(t, tc.v2.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m", "-o", "json", "--pod-preflight=false")
			if r.code != 1 {
				t.Fatalf("v2: exit %d, want 1 (rolled back healthy)\n%s\n%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestDecisionOnHeldRelease: with --on-failure=hold no deploy waits, so `rollguard approve` rolls the
// release back itself and proves it healthy, and `rollguard reject` closes it as rejected.
func TestDecisionOnHeldRelease(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		decision string
		outcome  release.Outcome
	}{{"approve", release.RolledBack}, {"reject", release.Rejected}} {
		t.Run(tc.decision, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			deployV1(t, ns)
			if r := rollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--on-failure", "hold", "--timeout", "2m"); r.code != 5 {
				t.Fatalf("held deploy: exit %d, want 5\n%s", r.code, r.stderr)
			}
			id := waitForOutcome(t, ns, "web", release.PendingApproval)
			d := rollguard(t, "", tc.decision, id, "-n", ns, "--timeout", "2m")
			if d.code != 0 {
				t.Fatalf("%s: exit %d, want 0\n%s\n%s", tc.decision, d.code, d.stdout, d.stderr)
			}
			rec := record(t, ns, id)
			if rec.Outcome != tc.outcome || rec.Approval == nil || rec.Approval.By == "" {
				t.Fatalf("record: outcome %s approval %+v; want %s with who decided", rec.Outcome, rec.Approval, tc.outcome)
			}
			if tc.decision == "approve" {
				assertV1(t, ns)
			} else if img := templateImage(t, ns); img != "registry.example.com/web:2.0.0" {
				t.Errorf("reject changed the workload: it runs %s", img)
			}
			noSecrets(t, d.stdout, d.stderr)
		})
	}
}

// templateImage is the web Deployment's image, healthy or not.
func templateImage(t *testing.T, ns string) string {
	t.Helper()
	d, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image
}
