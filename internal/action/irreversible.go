package action

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
)

// Irreversible steps. A pre-deploy Job annotated rollguard.dev/reversible: "false" changes something the
// previous code cannot work with (a contract migration that drops a column). Once it has succeeded, rolling
// back the code would put the old version on the new schema: worse than the failure. So from that moment an
// automatic rollback becomes a hold (exit 5) or an approval wait, and the record and the result say which
// Job made the release irreversible and when.

// OnIrreversible is what a failed release does after an irreversible step succeeded, in place of an
// automatic rollback.
type OnIrreversible string

// On-irreversible policies.
const (
	IrreversibleHold     OnIrreversible = "hold"
	IrreversibleApprove  OnIrreversible = "approve"
	IrreversibleRollback OnIrreversible = "rollback"
)

// ParseOnIrreversible validates --on-irreversible; empty is hold.
func ParseOnIrreversible(s string) (OnIrreversible, error) {
	switch p := OnIrreversible(s); p {
	case "":
		return IrreversibleHold, nil
	case IrreversibleHold, IrreversibleApprove, IrreversibleRollback:
		return p, nil
	}
	return "", exitcode.BadInputf("--on-irreversible must be hold, approve or rollback, got %q", s)
}

// afterIrreversible is the on-failure policy once an irreversible step succeeded: an automatic rollback
// becomes what --on-irreversible says; a policy that already waits for people (or does nothing) stays.
func afterIrreversible(policy OnFailure, on OnIrreversible) OnFailure {
	if policy != OnFailureRollback {
		return policy
	}
	switch on {
	case IrreversibleRollback:
		return OnFailureRollback
	case IrreversibleApprove:
		return OnFailureApprove
	}
	return OnFailureHold
}

// markIrreversible records the first irreversible pre-deploy Job that completed and applies
// --on-irreversible to the run's on-failure policy. ws are the pre-deploy Jobs' verdicts.
func (d *Deploy) markIrreversible(ctx context.Context, s *State, ws []report.Workload) error {
	for _, o := range s.phases.pre {
		if o.GetKind() != "Job" || o.GetAnnotations()[ReversibleAnnotation] != "false" {
			continue
		}
		at := time.Now()
		for _, w := range ws {
			if w.Kind == "Job" && w.Namespace == o.GetNamespace() && w.Name == o.GetName() && !w.DetectedAt.IsZero() {
				at = w.DetectedAt
			}
		}
		s.Record.Irreversible = &release.Irreversible{Job: "Job/" + o.GetName(), At: at.UTC()}
		break
	}
	if s.Record.Irreversible == nil {
		return nil
	}
	on, _ := ParseOnIrreversible(d.OnIrreversible) // validated by load
	was := s.OnFailure
	s.OnFailure = afterIrreversible(s.OnFailure, on)
	msg := fmt.Sprintf("%s is irreversible (%s: \"false\") and completed", s.Record.Irreversible.Job, ReversibleAnnotation)
	if s.OnFailure != was {
		msg += fmt.Sprintf("; if the release fails from now on it waits for a person's decision instead of being rolled back (--on-irreversible %s)", on)
	}
	d.event(msg)
	return s.Store.Update(ctx, s.Record)
}

// irreversibleNote says why a failed release was not rolled back automatically: which Job, when, and what
// a rollback would do. Empty for a release without an irreversible step.
func irreversibleNote(rec *release.Record) string {
	ir := rec.Irreversible
	if ir == nil {
		return ""
	}
	var restores, deletes []string
	for _, o := range rec.Objects {
		ref := o.Kind + "/" + o.Name
		if o.Kind+"/"+o.Name == ir.Job {
			continue
		}
		if o.Existed {
			restores = append(restores, ref)
		} else {
			deletes = append(deletes, ref)
		}
	}
	var would []string
	if len(restores) > 0 {
		would = append(would, "restore "+strings.Join(restores, ", "))
	}
	if len(deletes) > 0 {
		would = append(would, "delete "+strings.Join(deletes, ", "))
	}
	what := "restore the previous state"
	if len(would) > 0 {
		what = strings.Join(would, " and ")
	}
	return fmt.Sprintf("not rolled back automatically: %s is irreversible (%s: \"false\") and completed at %s; a rollback would %s but cannot undo what %s changed — decide with rollguard approve|reject %s -n %s",
		ir.Job, ReversibleAnnotation, ir.At.UTC().Format(time.RFC3339), what, ir.Job, rec.ID, rec.Namespace)
}

// oneLineJoin is "a; b", or b when a is empty.
func oneLineJoin(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
