package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollguard/rollguard/internal/release"
)

// brokenImage is a release of web whose image cannot be pulled.
func brokenImage(tag string) string {
	return app{image: "registry.example.com/web:" + tag, scenario: "image-pull-failure"}.yaml()
}

func appHistory(t *testing.T, ns, object string) map[string]historyEntry {
	t.Helper()
	r := rollguard(t, "", "history", object, "-n", ns, "-o", "json")
	if r.code != 0 {
		t.Fatalf("history %s: exit %d\n%s", object, r.code, r.stderr)
	}
	var h struct {
		Entries []historyEntry `json:"entries"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		t.Fatalf("history -o json: %v\n%s", err, r.stdout)
	}
	out := map[string]historyEntry{}
	for _, e := range h.Entries {
		if e.Release != "" {
			out[e.Release] = e
		}
	}
	return out
}

// TestHistoryNamesTrueRollbackTarget (#18.5): v2 fails and its rollback is rejected; v3 fails too and its
// approved rollback returns to v1 (v2's recorded previous state). approve, the cluster and history must
// all say web.v1; the failed web.v2 is nobody's rollback target.
func TestHistoryNamesTrueRollbackTarget(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployImage(t, ns, "1.0.0")
	for _, step := range []struct{ tag, decision string }{{"2.0.0", "reject"}, {"3.0.0", "approve"}} {
		if r := rollguard(t, brokenImage(step.tag), "deploy", "-f", "-", "-n", ns, "--on-failure", "hold", "--timeout", "2m"); r.code != 5 {
			t.Fatalf("deploy %s: exit %d, want 5\n%s", step.tag, r.code, r.stderr)
		}
		id := waitForOutcome(t, ns, "web", release.PendingApproval)
		d := rollguard(t, "", step.decision, id, "-n", ns, "-o", "json", "--timeout", "2m")
		if d.code != 0 {
			t.Fatalf("%s %s: exit %d\n%s\n%s", step.decision, id, d.code, d.stdout, d.stderr)
		}
		if step.decision == "approve" && !strings.Contains(d.stdout, `"toRelease": "web.v1"`) {
			t.Errorf("approve -o json does not name web.v1 as the rollback target:\n%s", d.stdout)
		}
	}
	if img := templateImage(t, ns); img != "registry.example.com/web:1.0.0" {
		t.Fatalf("cluster runs %s, want 1.0.0", img)
	}
	for _, object := range []string{"web", "deployment/web"} {
		h := appHistory(t, ns, object)
		if got := h["web.v3"].RolledBackTo; got != "web.v1" {
			t.Errorf("history %s: web.v3 rolled back to %q, want web.v1", object, got)
		}
		if len(h["web.v2"].RollbackTarget) > 0 {
			t.Errorf("history %s: the failed web.v2 is labelled the rollback target of %v", object, h["web.v2"].RollbackTarget)
		}
	}
	if text := rollguard(t, "", "history", "web", "-n", ns); strings.Contains(text.stdout, "→ web.v2") {
		t.Errorf("text history names web.v2 as a rollback target:\n%s", text.stdout)
	}
}

// TestUndoRecordsTheTruth (#18.6): undo after a kubectl change undoes that change (not "undo of" the last
// release) and records where it went; --to-revision takes every number history lists; a refused undo
// leaves no record; the current revision shows when the undo made it current.
func TestUndoRecordsTheTruth(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	ctx := context.Background()
	deployImage(t, ns, "1.0.0") // revision 1, web.v1
	deployImage(t, ns, "1.1.0") // revision 2, web.v2
	// A change made with kubectl (set image): revision 3.
	d, err := cluster.Client().AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Image = "registry.example.com/web:1.5.0"
	if _, err := cluster.Client().AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{FieldManager: "kubectl-set"}); err != nil {
		t.Fatal(err)
	}
	if r := rollguard(t, "", "status", "deployment/web", "-n", ns, "--timeout", "2m"); r.code != 0 {
		t.Fatalf("status after kubectl set image: exit %d\n%s", r.code, r.stderr)
	}

	u := rollguard(t, "", "undo", "deployment/web", "-n", ns, "--timeout", "2m")
	if u.code != 0 {
		t.Fatalf("undo: exit %d\n%s\n%s", u.code, u.stdout, u.stderr)
	}
	undo := records(t, ns, "web")[0]
	if undo.RollbackOf != "" || undo.RestoresTo != "web.v2" {
		t.Errorf("undo of a kubectl change recorded as undo of %q returning to %q; want no release undone, back to web.v2", undo.RollbackOf, undo.RestoresTo)
	}
	if img := templateImage(t, ns); img != "registry.example.com/web:1.1.0" {
		t.Errorf("undo went to %s, want 1.1.0", img)
	}

	before := len(records(t, ns, "web"))
	if r := rollguard(t, "", "undo", "deployment/web", "-n", ns, "--to-revision", "99", "--timeout", "1m"); r.code != 3 {
		t.Errorf("undo to a revision that does not exist: exit %d, want 3\n%s", r.code, r.stderr)
	}
	if after := len(records(t, ns, "web")); after != before {
		t.Errorf("a refused undo left a record: %d records, had %d", after, before)
	}

	// Revision 1 (1.0.0) becomes 5; then back to 3 (1.5.0), which becomes 6; then "revision 1" again,
	// which history still lists (same as 5).
	start := time.Now().Add(-time.Second)
	for _, rev := range []string{"1", "3", "1"} {
		if r := rollguard(t, "", "undo", "deployment/web", "-n", ns, "--to-revision", rev, "--timeout", "2m"); r.code != 0 {
			t.Fatalf("undo --to-revision %s: exit %d\n%s\n%s", rev, r.code, r.stdout, r.stderr)
		}
	}
	if img := templateImage(t, ns); img != "registry.example.com/web:1.0.0" {
		t.Errorf("undo --to-revision 1 went to %s, want 1.0.0", img)
	}
	if last := records(t, ns, "web")[0]; last.RestoresTo != "web.v1" {
		t.Errorf("undo --to-revision 1 recorded it went to %q, want web.v1", last.RestoresTo)
	}
	r := rollguard(t, "", "history", "deployment/web", "-n", ns, "-o", "json")
	var h struct {
		Entries []struct {
			Revision int64     `json:"revision"`
			Current  bool      `json:"current"`
			Time     time.Time `json:"time"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		t.Fatal(err)
	}
	for _, e := range h.Entries {
		if e.Current && e.Time.Before(start) {
			t.Errorf("current revision %d shows %s, before the undo that made it current (%s)", e.Revision, e.Time, start)
		}
	}
}

// startSignalled runs rollguard in the background and returns its process, to be signalled.
func startSignalled(t *testing.T, stdin string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = []string{"KUBECONFIG=" + cluster.Kubeconfig, "HOME=" + t.TempDir()}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, &out, &errb
}

func exitCodeOf(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(time.Minute):
		t.Fatal("rollguard did not stop within a minute of the signal")
		return -1
	}
}

// TestInterruptedDeploy (#18.7): SIGINT while tracking stops the run, records where it stopped, writes
// every report and exits 2 naming what to run next; the next deploy converges. SIGTERM while waiting for
// an approval exits 5: the release stays pending and `approve` carries the rollback out.
func TestInterruptedDeploy(t *testing.T) {
	t.Parallel()
	t.Run("tracking", func(t *testing.T) {
		t.Parallel()
		ns := cluster.Namespace(t)
		deployV1(t, ns)
		dir := t.TempDir()
		junit, md := filepath.Join(dir, "report.xml"), filepath.Join(dir, "summary.md")
		slow := app{image: "registry.example.com/web:2.1.0", scenario: "slow-ready", annotations: map[string]string{"sandbox.rollguard.dev/ready-after": "1h"}}.yaml()
		cmd, out, errb := startSignalled(t, slow, "deploy", "-f", "-", "-n", ns, "--timeout", "10m", "-o", "json", "--junit", junit, "--summary-markdown", md)
		id := waitForOutcome(t, ns, "web", release.Tracking)
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if code := exitCodeOf(t, cmd); code != 2 {
			t.Fatalf("interrupted deploy: exit %d, want 2\n%s\n%s", code, out, errb)
		}
		var rep struct{ Outcome, Message string }
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Outcome != "interrupted" || !strings.Contains(rep.Message, "rollguard rollback "+id) {
			t.Errorf("JSON result: %v, outcome %q, message %q; want interrupted naming rollguard rollback %s", err, rep.Outcome, rep.Message, id)
		}
		for _, f := range []string{junit, md} {
			if b, err := os.ReadFile(f); err != nil || !strings.Contains(string(b), "interrupted") {
				t.Errorf("%s: %v\n%s", f, err, b)
			}
		}
		if rec := record(t, ns, id); rec.Outcome != release.Interrupted || !strings.Contains(rec.Message, "tracking") {
			t.Errorf("record %s: %s %q, want interrupted while tracking", id, rec.Outcome, rec.Message)
		}
		if r := rollguard(t, releaseV1(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m", "--wait-for-lock", "1m"); r.code != 0 {
			t.Fatalf("next deploy: exit %d\n%s", r.code, r.stderr)
		}
		assertV1(t, ns)
	})
	t.Run("approval", func(t *testing.T) {
		t.Parallel()
		ns := cluster.Namespace(t)
		deployV1(t, ns)
		cmd, out, errb := startSignalled(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--on-failure", "approve", "--approval-timeout", "10m", "--timeout", "5m", "-o", "json")
		id := waitForOutcome(t, ns, "web", release.PendingApproval)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := exitCodeOf(t, cmd); code != 5 {
			t.Fatalf("deploy interrupted while waiting for approval: exit %d, want 5\n%s\n%s", code, out, errb)
		}
		if !strings.Contains(out.String(), `"outcome": "pending_approval"`) || !strings.Contains(out.String(), "rollguard approve "+id) {
			t.Errorf("JSON result does not say pending_approval and what to run:\n%s", out)
		}
		if a := rollguard(t, "", "approve", id, "-n", ns, "--timeout", "2m"); a.code != 0 {
			t.Fatalf("approve after the interrupted wait: exit %d\n%s\n%s", a.code, a.stdout, a.stderr)
		}
		assertV1(t, ns)
	})
}

// TestReportsBeforeChanges (#18.8, #18.9): an unwritable report path is refused before anything
// changes; every exit code comes with a JSON result and a JUnit file.
func TestReportsBeforeChanges(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	r := rollguard(t, app{}.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m", "--junit", "/nonexistent-dir/report.xml")
	if r.code != 3 || !strings.Contains(r.stderr, "--junit") {
		t.Errorf("unwritable --junit: exit %d, want 3 naming --junit\n%s", r.code, r.stderr)
	}
	if _, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{}); err == nil {
		t.Errorf("the deploy changed the cluster although its report could not be written")
	}

	dir := t.TempDir()
	unreachable := writeFile(t, "kubeconfig", "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: x\n")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
	}{
		{"bad input", []string{"KUBECONFIG=" + cluster.Kubeconfig}, []string{"deploy", "-f", "-", "-n", ns, "--timeout", "0s"}, 3},
		{"unreachable", []string{"KUBECONFIG=" + unreachable}, []string{"deploy", "-f", "-", "-n", ns, "--timeout", "1m"}, 4},
	} {
		junit := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".xml")
		r := rollguardEnv(t, tc.env, app{}.yaml(), append(tc.args, "-o", "json", "--junit", junit)...)
		if r.code != tc.code {
			t.Errorf("%s: exit %d, want %d\n%s", tc.name, r.code, tc.code, r.stderr)
		}
		var rep struct {
			Outcome  string `json:"outcome"`
			ExitCode int    `json:"exitCode"`
			Message  string `json:"message"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Outcome != "error" || rep.ExitCode != tc.code || rep.Message == "" {
			t.Errorf("%s: JSON result %+v (%v), want outcome error, exit code %d and the message\n%s", tc.name, rep, err, tc.code, r.stdout)
		}
		if b, err := os.ReadFile(junit); err != nil || !strings.Contains(string(b), "<failure") {
			t.Errorf("%s: JUnit file: %v\n%s", tc.name, err, b)
		}
	}
}

// TestUndoAfterRollbackAsks (#18 rough edge): after an automatic rollback, the revision before the current
// one is the failed release; a plain undo (kubectl semantics) would deploy it again, so it is refused with
// the way to choose.
func TestUndoAfterRollbackAsks(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployImage(t, ns, "1.0.0")
	if r := rollguard(t, brokenImage("2.0.0"), "deploy", "-f", "-", "-n", ns, "--timeout", "2m"); r.code != 1 {
		t.Fatalf("broken deploy: exit %d, want 1\n%s", r.code, r.stderr)
	}
	r := rollguard(t, "", "undo", "deployment/web", "-n", ns, "--timeout", "1m")
	if r.code != 3 || !strings.Contains(r.stderr, "web.v2") || !strings.Contains(r.stderr, "--to-revision") {
		t.Fatalf("plain undo after a rollback: exit %d, want 3 naming web.v2\n%s", r.code, r.stderr)
	}
	if img := templateImage(t, ns); img != "registry.example.com/web:1.0.0" {
		t.Errorf("a refused undo changed the workload: it runs %s", img)
	}
}
