package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/sandbox"
)

// phaseJob is a Job of a release phase (rollguard.dev/phase), failing when scenario is job-failure.
type phaseJob struct {
	name, phase, scenario string
	annotations           map[string]string
}

func (j phaseJob) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: %s\n  annotations:\n", j.name)
	if j.phase != "" {
		fmt.Fprintf(&b, "    rollguard.dev/phase: %s\n", j.phase)
	}
	for k, v := range j.annotations {
		fmt.Fprintf(&b, "    %s: %q\n", k, v)
	}
	b.WriteString("spec:\n  backoffLimit: 0\n  template:\n    metadata:\n      labels:\n        app: " + j.name + "\n")
	if j.scenario != "" {
		fmt.Fprintf(&b, "        sandbox.rollguard.dev/scenario: %s\n", j.scenario)
	}
	fmt.Fprintf(&b, "    spec:\n      restartPolicy: Never\n      containers:\n      - name: %s\n        image: registry.example.com/web:2.0.0\n", j.name)
	return b.String()
}

// phaseReport is the part of `-o json` about phases.
type phaseReport struct {
	Outcome   string `json:"outcome"`
	Message   string `json:"message"`
	AppliedAt string `json:"appliedAt"`
	Workloads []struct {
		Kind, Name, Status, Reason, Message, Phase string
	} `json:"workloads"`
	Phases []struct {
		Name, Outcome, Message string
		StartedAt              string `json:"startedAt"`
		FinishedAt             string `json:"finishedAt"`
	} `json:"phases"`
}

func parsePhases(t *testing.T, r result) phaseReport {
	t.Helper()
	var rep phaseReport
	if err := jsonUnmarshal(r.stdout, &rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s\n%s", err, r.stdout, r.stderr)
	}
	return rep
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return ts
}

func deployment(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func replicaSets(t *testing.T, ns string) []appsv1.ReplicaSet {
	t.Helper()
	l, err := cluster.Client().AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func jobCompletedAt(t *testing.T, ns, name string) time.Time {
	t.Helper()
	j, err := cluster.Client().BatchV1().Jobs(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	t.Fatalf("Job %s did not complete: %+v", name, j.Status)
	return time.Time{}
}

// TestPhasePreDeployAndVerify: the pre-deploy Job completes before the Deployment's new ReplicaSet exists,
// the verify Job runs once the rollout is healthy, and both show in the JSON report and the record.
func TestPhasePreDeployAndVerify(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployImage(t, ns, "1.0.0")
	v2 := app{image: "registry.example.com/web:2.0.0"}
	manifests := phaseJob{name: "migrate", phase: "pre-deploy"}.yaml() + "---\n" + v2.yaml() + "---\n" + phaseJob{name: "smoke", phase: "verify"}.yaml()
	r := rollguard(t, manifests, "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "2m")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep := parsePhases(t, r)
	if len(rep.Phases) != 2 || rep.Phases[0].Name != "pre-deploy" || rep.Phases[1].Name != "verify" ||
		rep.Phases[0].Outcome != "succeeded" || rep.Phases[1].Outcome != "succeeded" {
		t.Fatalf("phases = %+v, want pre-deploy then verify, succeeded", rep.Phases)
	}
	// The pre-deploy phase ended before anything of the rollout was applied, and verify began after it.
	applied := parseTime(t, rep.AppliedAt)
	if pre := parseTime(t, rep.Phases[0].FinishedAt); pre.After(applied) {
		t.Errorf("pre-deploy finished at %s, after the apply at %s", pre, applied)
	}
	if ver := parseTime(t, rep.Phases[1].StartedAt); ver.Before(applied) {
		t.Errorf("verify started at %s, before the apply at %s", ver, applied)
	}
	var phases []string
	for _, w := range rep.Workloads {
		phases = append(phases, w.Phase+":"+w.Kind+"/"+w.Name+":"+w.Status)
	}
	if got := strings.Join(phases, " "); got != "pre-deploy:Job/migrate:healthy :Deployment/web:healthy verify:Job/smoke:healthy" {
		t.Errorf("workloads %s", got)
	}
	// In the cluster's own clock: the Job completed before the new ReplicaSet was created (both in seconds).
	done := jobCompletedAt(t, ns, "migrate")
	for _, rs := range replicaSets(t, ns) {
		if rs.Spec.Template.Spec.Containers[0].Image == v2.image && rs.CreationTimestamp.Time.Before(done) {
			t.Errorf("ReplicaSet %s created at %s, before the pre-deploy Job completed at %s", rs.Name, rs.CreationTimestamp, done)
		}
	}
	smoke := jobCompletedAt(t, ns, "smoke")
	if d := deployment(t, ns, "web"); d.Status.UpdatedReplicas != 3 || smoke.Before(done) {
		t.Errorf("verify Job completed at %s (pre-deploy %s); web updated %d", smoke, done, d.Status.UpdatedReplicas)
	}
	rec := records(t, ns, "web")[0]
	if len(rec.Phases) != 2 || rec.Phases[0].Name != "pre-deploy" || rec.Phases[1].Name != "verify" {
		t.Errorf("record phases %+v", rec.Phases)
	}
	if h := rollguard(t, "", "history", "web", "-n", ns); h.code != 0 || !strings.Contains(h.stdout, "succeeded, pre-deploy succeeded, verify succeeded") {
		t.Errorf("history does not show the phases: exit %d\n%s%s", h.code, h.stdout, h.stderr)
	}
}

// TestPhasePreDeployFailureLeavesWorkloadsUntouched: a failed pre-deploy Job fails the release with
// JobFailed; the Deployment never changes (no new ReplicaSet, same generation) and the Job is removed.
func TestPhasePreDeployFailureLeavesWorkloadsUntouched(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployImage(t, ns, "1.0.0")
	before := deployment(t, ns, "web")
	rsBefore := len(replicaSets(t, ns))
	manifests := phaseJob{name: "migrate", phase: "pre-deploy", scenario: "job-failure"}.yaml() + "---\n" + app{image: "registry.example.com/web:2.0.0"}.yaml()
	r := rollguard(t, manifests, "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "2m")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (failed, rolled back)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep := parsePhases(t, r)
	if len(rep.Workloads) != 1 || rep.Workloads[0].Reason != "JobFailed" || rep.Workloads[0].Phase != "pre-deploy" {
		t.Fatalf("workloads %+v, want the pre-deploy Job failed with JobFailed", rep.Workloads)
	}
	if len(rep.Phases) != 1 || rep.Phases[0].Outcome != "failed" || !strings.Contains(rep.Message, "no workload was changed") {
		t.Errorf("phases %+v, message %q", rep.Phases, rep.Message)
	}
	after := deployment(t, ns, "web")
	if after.Generation != before.Generation || after.Spec.Template.Spec.Containers[0].Image != "registry.example.com/web:1.0.0" {
		t.Errorf("the Deployment changed: generation %d → %d, image %s", before.Generation, after.Generation, after.Spec.Template.Spec.Containers[0].Image)
	}
	if n := len(replicaSets(t, ns)); n != rsBefore {
		t.Errorf("%d ReplicaSets, want %d", n, rsBefore)
	}
	if _, err := cluster.Client().BatchV1().Jobs(ns).Get(context.Background(), "migrate", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the failed Job the release created was not removed: %v", err)
	}
}

// TestPhaseVerifyFailureRollsBack: the rollout is healthy but its verify Job fails: VerificationFailed,
// and the release is rolled back to v1.
func TestPhaseVerifyFailureRollsBack(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployImage(t, ns, "1.0.0")
	manifests := app{image: "registry.example.com/web:2.0.0"}.yaml() + "---\n" + phaseJob{name: "smoke", phase: "verify", scenario: "job-failure"}.yaml()
	r := rollguard(t, manifests, "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "2m", "--junit", writeFile(t, "junit.xml", ""))
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (rolled back)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep := parsePhases(t, r)
	var reasons []string
	for _, w := range rep.Workloads {
		reasons = append(reasons, w.Kind+"/"+w.Name+":"+w.Status+":"+w.Reason)
	}
	if got := strings.Join(reasons, " "); got != "Deployment/web:healthy: Job/smoke:failed:VerificationFailed" {
		t.Fatalf("workloads %s", got)
	}
	if img := templateImage(t, ns); img != "registry.example.com/web:1.0.0" {
		t.Errorf("not rolled back: image %s", img)
	}
	if rec := records(t, ns, "web")[0]; rec.Reason != "VerificationFailed" || rec.Outcome != "rolled_back" {
		t.Errorf("record %s: %s %s", rec.ID, rec.Outcome, rec.Reason)
	}
}

// TestPhaseIrreversibleHeldThenApproved: after an irreversible pre-deploy Job succeeded, a broken rollout
// is held (exit 5) instead of rolled back, saying why; `rollguard approve` then rolls it back.
func TestPhaseIrreversibleHeldThenApproved(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployImage(t, ns, "1.0.0")
	migrate := phaseJob{name: "contract", phase: "pre-deploy", annotations: map[string]string{"rollguard.dev/reversible": "false"}}
	manifests := migrate.yaml() + "---\n" + app{image: "registry.example.com/web:2.0.0", scenario: "crash-loop"}.yaml()
	r := rollguard(t, manifests, "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "2m")
	t.Logf("progress of the held release:\n%s", r.stderr)
	if r.code != 5 {
		t.Fatalf("exit %d, want 5 (held)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep := parsePhases(t, r)
	if rep.Outcome != "pending_approval" || !strings.Contains(rep.Message, "Job/contract is irreversible") || !strings.Contains(rep.Message, "restore Deployment/web") {
		t.Errorf("outcome %s, message %q; want held, naming the Job and what a rollback would do", rep.Outcome, rep.Message)
	}
	if img := templateImage(t, ns); img != "registry.example.com/web:2.0.0" {
		t.Errorf("rolled back automatically: image %s", img)
	}
	rec := records(t, ns, "web")[0]
	if rec.Irreversible == nil || rec.Irreversible.Job != "Job/contract" || rec.Irreversible.At.IsZero() {
		t.Fatalf("record %s does not mark the irreversible step: %+v", rec.ID, rec.Irreversible)
	}
	if h := rollguard(t, "", "history", "web", "-n", ns); h.code != 0 || !strings.Contains(h.stdout, "irreversible") {
		t.Errorf("history does not mark the irreversible release: exit %d\n%s%s", h.code, h.stdout, h.stderr)
	}
	a := rollguard(t, "", "approve", rec.ID, "-n", ns, "--timeout", "2m")
	if a.code != 0 {
		t.Fatalf("approve: exit %d\n%s\n%s", a.code, a.stdout, a.stderr)
	}
	if img := templateImage(t, ns); img != "registry.example.com/web:1.0.0" {
		t.Errorf("approve did not roll back: image %s", img)
	}
}

// TestPhaseHelmHooks deploys `helm template` output (committed: e2e/testdata/helm/rendered.yaml, rendered
// from e2e/testdata/helm/web): its pre-install/pre-upgrade hook Job and the ConfigMap hook it reads run
// before the Deployment changes, the post-upgrade hook Job verifies, and the test hook is not run.
func TestPhaseHelmHooks(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	rendered, err := os.ReadFile("testdata/helm/rendered.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{0, 0} {
		r := rollguard(t, string(rendered), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "2m")
		if r.code != want {
			t.Fatalf("deploy %d: exit %d\n%s\n%s", i+1, r.code, r.stdout, r.stderr)
		}
		rep := parsePhases(t, r)
		var got []string
		for _, w := range rep.Workloads {
			got = append(got, w.Phase+":"+w.Kind+"/"+w.Name)
		}
		// The first deploy is an install (pre-install), the second an upgrade (pre-upgrade, post-upgrade).
		want := "pre-deploy:Job/web-migrate :Deployment/web"
		if i == 1 {
			want += " verify:Job/web-smoke"
		}
		if strings.Join(got, " ") != want {
			t.Errorf("deploy %d: workloads %v, want %s", i+1, got, want)
		}
		if applied, pre := parseTime(t, rep.AppliedAt), parseTime(t, rep.Phases[0].FinishedAt); rep.Phases[0].Name != "pre-deploy" || pre.After(applied) {
			t.Errorf("deploy %d: phases %+v, applied at %s", i+1, rep.Phases, applied)
		}
	}
	if _, err := cluster.Client().CoreV1().Pods(ns).Get(context.Background(), "web-test-connection", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the helm test hook pod was created: %v", err)
	}
	if _, err := cluster.Client().CoreV1().ConfigMaps(ns).Get(context.Background(), "web-migrations", metav1.GetOptions{}); err != nil {
		t.Errorf("the hook ConfigMap the migration reads was not applied: %v", err)
	}
}

// TestPhaseKilledAfterPreDeployConverges: a run killed after its pre-deploy Job completed (before anything
// else was applied), while its verify Job runs, or in its bake window, converges on the next run: the
// release is deployed, verified and baked, and the unchanged pre-deploy Job not run twice.
func TestPhaseKilledAfterPreDeployConverges(t *testing.T) {
	t.Parallel()
	for _, point := range crashpoint.PhasePoints {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			deployImage(t, ns, "1.0.0")
			manifests := phaseJob{name: "migrate", phase: "pre-deploy"}.yaml() + "---\n" + app{image: "registry.example.com/web:2.0.0"}.yaml() +
				"---\n" + phaseJob{name: "smoke", phase: "verify"}.yaml()
			args := []string{"deploy", "-f", "-", "-n", ns, "--timeout", "2m", "--lock-ttl", "2s", "--bake", "3s"}
			killed := rollguardEnv(t, []string{"KUBECONFIG=" + cluster.Kubeconfig, crashpoint.Env + "=" + point}, manifests, args...)
			if killed.code != -1 || !strings.Contains(killed.stderr, crashpoint.Line(point)) {
				t.Fatalf("not killed at %s: exit %d\n%s", point, killed.code, killed.stderr)
			}
			if img := templateImage(t, ns); point == "deploy:pre-deployed" && img != "registry.example.com/web:1.0.0" {
				t.Fatalf("killed after the pre-deploy phase, the workload changed already: %s", img)
			}
			first := jobCompletedAt(t, ns, "migrate")
			r := rollguard(t, manifests, "deploy", "-f", "-", "-n", ns, "--timeout", "2m", "--wait-for-lock", "1m", "-o", "json", "--bake", "3s")
			if r.code != 0 {
				t.Fatalf("re-run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if img := templateImage(t, ns); img != "registry.example.com/web:2.0.0" {
				t.Errorf("re-run did not deploy v2: %s", img)
			}
			if again := jobCompletedAt(t, ns, "migrate"); !again.Equal(first) {
				t.Errorf("the completed migration ran again (%s, then %s)", first, again)
			}
			recs := records(t, ns, "web")
			if n := len(recs[0].Phases); n != 3 || recs[0].Phases[1].Name != "verify" || recs[0].Phases[1].Outcome != "succeeded" {
				t.Errorf("re-run phases %+v, want pre-deploy, verify and bake", recs[0].Phases)
			}
			if recs[0].Outcome != "succeeded" || recs[1].Outcome != "failed" || !strings.Contains(recs[1].Message, "superseded by "+recs[0].ID) {
				t.Errorf("records: %s %s; %s %s %q", recs[0].ID, recs[0].Outcome, recs[1].ID, recs[1].Outcome, recs[1].Message)
			}
		})
	}
}

// TestPhaseBakeCrashLoopRollsBack: v2 rolls out healthy and starts crashing 20s later, inside the 2-minute
// bake window: the bake fails it (CrashLoop) and it is rolled back to v1.
func TestPhaseBakeCrashLoopRollsBack(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployImage(t, ns, "1.0.0")
	v2 := app{image: "registry.example.com/web:2.0.0", scenario: sandbox.ScenarioCrashLater,
		annotations: map[string]string{sandbox.CrashAfterAnnotation: "20s"}}
	junit := writeFile(t, "junit.xml", "")
	r := rollguard(t, v2.yaml(), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "2m", "--bake", "2m", "--junit", junit)
	t.Logf("progress of the baked release:\n%s", r.stderr)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (rolled back)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep := parsePhases(t, r)
	if len(rep.Phases) != 1 || rep.Phases[0].Name != "bake" || rep.Phases[0].Outcome != "failed" {
		t.Fatalf("phases %+v, want the bake failed", rep.Phases)
	}
	if w := rep.Workloads[0]; w.Status != "failed" || w.Reason != "CrashLoop" || !strings.Contains(w.Message, "during the bake window") {
		t.Errorf("workload %+v, want a CrashLoop during the bake window", w)
	}
	if !strings.Contains(r.stderr, "bake: watching Deployment/web for 2m0s") {
		t.Errorf("no bake progress line:\n%s", r.stderr)
	}
	if img := templateImage(t, ns); img != "registry.example.com/web:1.0.0" {
		t.Errorf("not rolled back: %s", img)
	}
	rec := records(t, ns, "web")[0]
	if rec.Outcome != "rolled_back" || rec.Reason != "CrashLoop" || len(rec.Phases) != 1 || rec.Phases[0].Outcome != "failed" {
		t.Errorf("record %s: %s %s phases %+v", rec.ID, rec.Outcome, rec.Reason, rec.Phases)
	}
	if x, _ := os.ReadFile(junit); !strings.Contains(string(x), `name="phase/bake"`) || !strings.Contains(string(x), `type="failed"`) {
		t.Errorf("JUnit lacks the failed bake:\n%s", x)
	}
}

// TestPhaseBakeHealthyPasses is its counter-scenario: a release whose pods lose readiness for 3s inside the
// window (shorter than --readiness-slack) and are ready again succeeds, after the window.
func TestPhaseBakeHealthyPasses(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployImage(t, ns, "1.0.0")
	v2 := app{image: "registry.example.com/web:2.0.0", scenario: sandbox.ScenarioReadyBlip,
		annotations: map[string]string{sandbox.BlipAfterAnnotation: "5s"}}
	r := rollguard(t, v2.yaml(), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "2m", "--bake", "20s")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep := parsePhases(t, r)
	if len(rep.Phases) != 1 || rep.Phases[0].Name != "bake" || rep.Phases[0].Outcome != "succeeded" {
		t.Fatalf("phases %+v, want the bake succeeded", rep.Phases)
	}
	if d := parseTime(t, rep.Phases[0].FinishedAt).Sub(parseTime(t, rep.Phases[0].StartedAt)); d < 20*time.Second {
		t.Errorf("the bake took %s, less than its 20s window", d)
	}
	// The blip really happened, inside the window: every pod went unready and came back.
	pods, err := cluster.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sandbox.ScenarioLabel + "=" + sandbox.ScenarioReadyBlip})
	if err != nil || len(pods.Items) != 3 {
		t.Fatalf("%d blip pods (%v), want 3", len(pods.Items), err)
	}
	for _, p := range pods.Items {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && (c.Status != corev1.ConditionTrue || c.Reason != "BlipRecovered") {
				t.Errorf("pod %s: Ready=%s %s, want it back after its blip", p.Name, c.Status, c.Reason)
			}
		}
	}
	if rec := records(t, ns, "web")[0]; rec.Outcome != "succeeded" || len(rec.Phases) != 1 || rec.Phases[0].Name != "bake" {
		t.Errorf("record %s: %s phases %+v", rec.ID, rec.Outcome, rec.Phases)
	}
}

// TestPhaseProbeLint: a Deployment without a readinessProbe deploys with a warning; --require-probes
// refuses it (exit 3, one line, nothing changed); one with a probe passes --require-probes silently.
func TestPhaseProbeLint(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	r := rollguard(t, app{}.yaml(), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "2m")
	var rep struct{ Warnings []string }
	if err := jsonUnmarshal(r.stdout, &rep); r.code != 0 || err != nil || len(rep.Warnings) != 1 ||
		!strings.Contains(rep.Warnings[0], "Deployment/web has no readinessProbe") || !strings.Contains(r.stderr, "warning: Deployment/web has no readinessProbe") {
		t.Fatalf("exit %d, warnings %q (%v)\n%s", r.code, rep.Warnings, err, r.stderr)
	}
	before := snapshot(t, ns)
	refused := rollguard(t, app{image: "registry.example.com/web:2.0.0"}.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m", "--require-probes")
	if refused.code != 3 || strings.Count(strings.TrimSpace(refused.stderr), "\n") > 0 || !strings.Contains(refused.stderr, "--require-probes") {
		t.Errorf("--require-probes: exit %d, want 3 and one line\n%s", refused.code, refused.stderr)
	}
	if after := snapshot(t, ns); after != before {
		t.Errorf("a refused release changed the namespace:\n%s\n%s", before, after)
	}
	ok := rollguard(t, app{image: "registry.example.com/web:2.0.0", readinessProbe: true}.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m", "--require-probes")
	if ok.code != 0 || strings.Contains(ok.stderr, "readinessProbe") {
		t.Errorf("with a probe: exit %d\n%s", ok.code, ok.stderr)
	}
}
