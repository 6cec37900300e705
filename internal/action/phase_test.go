package action

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/report"
)

func names(ps []Phase) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// The deploy's order is its safety: nothing is locked before validation and preflight, nothing changes
// before it is recorded, nothing is decided before it is tracked.
func TestDeployPhaseOrder(t *testing.T) {
	want := []string{"load", "connect", "validate", "plan-phases", "probe-lint", "pod-preflight", "preflight", "namespaces", "lock", "record",
		"pre-deploy", "apply", "track", "verify", "bake", "decide"}
	if got := names((&Deploy{}).Phases()); !slices.Equal(got, want) {
		t.Errorf("deploy phases %v, want %v", got, want)
	}
}

func TestRunPhasesStopsAtAnErrorOrDone(t *testing.T) {
	var ran []string
	step := func(name string, err error, done bool) Phase {
		return Phase{Name: name, Run: func(_ context.Context, s *State) error {
			ran = append(ran, name)
			if name == "record" {
				s.Result = &report.Result{Release: "web.v1"}
			}
			s.Done = done
			return err
		}}
	}
	boom := errors.New("boom")

	ran = nil
	res, err := runPhases(context.Background(), &State{}, []Phase{step("a", nil, false), step("record", boom, false), step("c", nil, false)})
	if !errors.Is(err, boom) || res == nil || res.Release != "web.v1" || !slices.Equal(ran, []string{"a", "record"}) {
		t.Errorf("error: ran %v, result %+v, err %v; want a, record and the result with the error", ran, res, err)
	}

	ran = nil
	res, err = runPhases(context.Background(), &State{}, []Phase{step("record", nil, true), step("b", nil, false)})
	if err != nil || res == nil || !slices.Equal(ran, []string{"record"}) {
		t.Errorf("done: ran %v, err %v; want only record and no error", ran, err)
	}
}

// Every phase's context ends with the run, so goroutines a phase starts (the lock watcher) stop too.
func TestRunPhasesCancelsItsContext(t *testing.T) {
	var seen context.Context
	_, _ = runPhases(context.Background(), &State{}, []Phase{{Name: "a", Run: func(ctx context.Context, _ *State) error {
		seen = ctx
		return nil
	}}})
	select {
	case <-seen.Done():
	default:
		t.Error("the phases' context is still live after the run")
	}
}

func TestInsertPhase(t *testing.T) {
	ps := (&Deploy{}).Phases()
	before := names(ps)
	got := names(InsertPhase(ps, "preflight", Phase{Name: "pods"}))
	if i := slices.Index(got, "pods"); i < 1 || got[i-1] != "preflight" || len(got) != len(ps)+1 {
		t.Errorf("inserted after preflight: %v", got)
	}
	if !slices.Equal(names(ps), before) {
		t.Error("InsertPhase changed the list it was given")
	}
	defer func() {
		if recover() == nil {
			t.Error("inserting after an unknown phase did not panic")
		}
	}()
	InsertPhase(ps, "no-such-phase", Phase{Name: "x"})
}

// The load phase checks local input before any connection: the connector must not be called.
func TestDeployLoadRefusesBadInputBeforeConnecting(t *testing.T) {
	cases := []struct {
		name    string
		d       Deploy
		mention string
	}{
		{"timeout", Deploy{}, "--timeout"},
		{"timeout action", Deploy{Watch: Watch{Timeout: time.Minute}, Approval: Approval{ApprovalTimeoutAction: "later"}}, "--approval-timeout-action"},
		{"mutable tag", Deploy{Watch: Watch{Timeout: time.Minute}, Stdin: strings.NewReader(deploymentYAML("web:latest")), Files: []string{"-"}}, "latest"},
		{"unknown image container", Deploy{Watch: Watch{Timeout: time.Minute}, Stdin: strings.NewReader(deploymentYAML("web:1.0.0")), Files: []string{"-"}, Images: []string{"nope=web:2"}}, "nope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.d.Connect = func(context.Context) (*kube.Client, error) {
				t.Fatal("connected on bad input")
				return nil, nil
			}
			_, err := tc.d.Run(context.Background())
			if exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("err %v (exit %d), want bad input mentioning %q", err, exitcode.Of(err), tc.mention)
			}
		})
	}
}

func deploymentYAML(image string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "` + image + `"}]
`
}

func TestParsePolicies(t *testing.T) {
	for in, want := range map[string]OnFailure{"": OnFailureRollback, "hold": OnFailureHold, "approve": OnFailureApprove, "none": OnFailureNone} {
		if got, err := ParseOnFailure(in); err != nil || got != want {
			t.Errorf("ParseOnFailure(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseOnFailure("Rollback"); exitcode.Of(err) != exitcode.BadInput {
		t.Errorf("ParseOnFailure(Rollback): %v, want bad input", err)
	}
	if a, err := ParseTimeoutAction(""); err != nil || a != TimeoutRollback {
		t.Errorf("ParseTimeoutAction(\"\") = %q, %v", a, err)
	}
	if _, err := ParseTimeoutAction("ignore"); exitcode.Of(err) != exitcode.BadInput {
		t.Errorf("ParseTimeoutAction(ignore): %v, want bad input", err)
	}
}

// Undo, rollback and the rollback to the previous image are phase lists too: options checked before
// connecting, the lock before anything is chosen or recorded, the record before the change, the change
// tracked before it is decided; a rollback restores only after it refused newer releases under the lock.
func TestUndoAndRollbackPhaseOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []Phase
		want []string
	}{
		{"undo", (&Undo{}).Phases(), []string{"check", "connect", "lock", "target", "record", "apply", "track", "decide"}},
		{"rollback --to-previous-image", (&RollbackImage{}).Phases(), []string{"check", "connect", "find", "lock", "record", "apply", "track", "decide"}},
		{"rollback", (&Rollback{}).Phases(), []string{"check", "connect", "find", "lock", "newer", "restore"}},
		{"restore", restorePhases(Watch{}), []string{"restore", "track", "verify"}},
	} {
		if got := names(tc.got); !slices.Equal(got, tc.want) {
			t.Errorf("%s phases %v, want %v", tc.name, got, tc.want)
		}
	}
}
