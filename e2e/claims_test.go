package e2e

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/internal/release"
	"k8s.io/apimachinery/pkg/util/wait"
)

// The README's claims about approvals, unlock and rollback --last, each run as a user would.

// TestTerminalApproval: `--on-failure approve` run from a terminal asks there, "Roll back web.vN to its
// previous state? [y/n]"; answering y rolls back (exit 1, the previous release healthy), recorded as an
// approval like `rollguard approve` would record it. util-linux's script(1) gives the run a terminal (not a
// "dumb" one, which rollguard treats as no terminal).
func TestTerminalApproval(t *testing.T) {
	t.Parallel()
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatalf("script(1) (bsdutils, an essential Debian package) is needed to give rollguard a terminal: %v", err)
	}
	ns := cluster.Namespace(t)
	deployV1(t, ns)
	manifest := writeFile(t, "v2.yaml", releaseV2Broken())
	run := strings.Join([]string{binary, "deploy", "-f", manifest, "-n", ns, "--on-failure", "approve", "--approval-timeout", "5m", "--timeout", "5m"}, " ")
	cmd := exec.Command(script, "-qec", run, "/dev/null")
	cmd.Env = []string{"KUBECONFIG=" + cluster.Kubeconfig, "HOME=" + t.TempDir(), "TERM=xterm"}
	answer, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	s := store(t, ns)
	var id string
	err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-done:
			return false, fmt.Errorf("the deploy ended before it asked (%v)", err)
		default:
		}
		r, err := s.Latest(ctx, ns, "web")
		if err != nil || r == nil {
			return false, nil
		}
		id = r.ID
		return r.Outcome == release.PendingApproval, nil
	})
	if err != nil {
		t.Fatalf("waiting for the release to wait for a decision: %v\n%s", err, out.String())
	}
	if _, err := io.WriteString(answer, "y\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-done:
	case <-time.After(4 * time.Minute):
		t.Fatalf("the approved deploy did not finish:\n%s", out.String())
	}
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	}
	if code != 1 {
		t.Fatalf("deploy answered y at the terminal: exit %d (%v), want 1 (rolled back healthy)\n%s", code, err, out.String())
	}
	if !strings.Contains(out.String(), "Roll back "+id+" to its previous state? [y/n]") {
		t.Errorf("the terminal was not asked about %s:\n%s", id, out.String())
	}
	rec := record(t, ns, id)
	if rec.Outcome != release.RolledBack || rec.Approval == nil || rec.Approval.Decision != release.Approved || rec.Approval.By == "" {
		t.Errorf("record %s: outcome %s, approval %+v; want rolled_back, approved by someone", id, rec.Outcome, rec.Approval)
	}
	assertV1(t, ns)
}

// TestUnlockFreesADeadRunsLock: a run killed while it holds the app's lock leaves it until its TTL; `rollguard
// unlock APP` removes it at once, naming the holder, and the next deploy goes ahead without waiting. Unlocking
// an app nobody holds says so and changes nothing.
func TestUnlockFreesADeadRunsLock(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployV1(t, ns)
	killWhileTracking(t, ns, "1h")

	if held := rollguard(t, releaseV1(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m", "--wait-for-lock", "0s"); held.code != 3 || !strings.Contains(held.stderr, "locked by") {
		t.Fatalf("with the dead run's lock (TTL 1h) in place: exit %d, want 3 naming the holder\n%s", held.code, held.stderr)
	}
	u := rollguard(t, "", "unlock", "web", "-n", ns)
	if u.code != 0 || strings.Contains(u.stdout+u.stderr, "not locked") {
		t.Fatalf("unlock: exit %d, want 0 naming the removed holder\n%s\n%s", u.code, u.stdout, u.stderr)
	}
	if r := rollguard(t, releaseV1(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m", "--wait-for-lock", "0s"); r.code != 0 {
		t.Fatalf("deploy right after unlock: exit %d, want 0 without waiting for the lock\n%s", r.code, r.stderr)
	}
	assertV1(t, ns)
	again := rollguard(t, "", "unlock", "web", "-n", ns)
	if again.code != 0 || !strings.Contains(again.stdout+again.stderr, "not locked") {
		t.Errorf("unlock of an unlocked app: exit %d, want 0 saying it was not locked\n%s\n%s", again.code, again.stdout, again.stderr)
	}
}

// TestRollbackLastSucceeds: `rollguard rollback --last --app web` rolls back the app's newest release — a
// healthy one here, rolled back on purpose — restores what it replaced, proves it healthy and exits 0.
func TestRollbackLastSucceeds(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployImage(t, ns, "3.0.0")
	deployImage(t, ns, "3.1.0")
	r := rollguard(t, "", "rollback", "--last", "--app", "web", "-n", ns, "--timeout", "2m", "-o", "json")
	if r.code != 0 {
		t.Fatalf("rollback --last: exit %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep := parseReport(t, r)
	if rep.Outcome != "succeeded" || !strings.Contains(r.stdout, `"web.v2"`) {
		t.Errorf("report: outcome %q, want succeeded for web.v2\n%s", rep.Outcome, r.stdout)
	}
	if img := templateImage(t, ns); img != "registry.example.com/web:3.0.0" {
		t.Errorf("after rollback --last the workload runs %s, want registry.example.com/web:3.0.0", img)
	}
	if rec := record(t, ns, "web.v2"); rec.Outcome != release.RolledBack {
		t.Errorf("web.v2 is %s, want rolled_back", rec.Outcome)
	}
	if again := rollguard(t, "", "rollback", "--last", "--app", "web", "-n", ns); again.code != 3 || !strings.Contains(again.stderr, "already rolled back") {
		t.Errorf("a second rollback --last: exit %d, want 3 (web.v2 is already rolled back)\n%s", again.code, again.stderr)
	}
}
