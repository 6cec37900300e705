package action

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/notify"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
)

// Approval configures `--on-failure=approve`.
type Approval struct {
	// ApprovalTimeout is how long to wait for a decision.
	ApprovalTimeout time.Duration
	// ApprovalTimeoutAction is what happens when nobody decides in time: rollback (default) or reject.
	ApprovalTimeoutAction string
	// Prompt, when set (an interactive terminal), is read for a y/n answer alongside approvals given with
	// `rollguard approve` from anywhere.
	Prompt io.Reader
	// Notice receives the instructions for approvers (stderr).
	Notice io.Writer
	// Dashboard is the base URL of `rollguard dashboard`, for the link in approval notifications; empty
	// leaves the link out.
	Dashboard string
}

// converge deals with what an earlier run left behind, before this run records anything. A run killed
// mid-rollback is finished first. A release that did not end healthy (killed, failed without rollback,
// awaiting a decision) hands over its recorded previous state: it is the last known-good state, and the
// one this release must restore if it fails too. It reads the app's records from listing (taken under the
// app's lock) and returns the latest as well, so the caller need not; when it finished a rollback, which
// changed the records (changed), the latest is read again.
func (d *Deploy) converge(ctx context.Context, c *kube.Client, store *release.Store, listing *release.Listing) (inherited, latest *release.Record, changed bool, err error) {
	last, err := listing.Latest(ctx)
	if err != nil || last == nil {
		return nil, nil, false, err
	}
	switch last.Outcome {
	case release.RollingBack:
		d.logger().Warn("finishing the rollback a killed run left unfinished", "release", last.ID)
		if _, err := restoreAndVerify(ctx, c, store, last, d.Watch); err != nil {
			return nil, nil, true, fmt.Errorf("finishing the interrupted rollback of %s: %w", last.ID, err)
		}
		latest, err = store.Latest(ctx, last.Namespace, last.App)
		return nil, latest, true, err
	case release.Applying, release.Tracking, release.PendingApproval, release.Failed, release.Rejected, release.RollbackFailed,
		release.Interrupted, release.Superseded:
		d.logger().Warn("previous release did not end healthy; keeping its recorded previous state", "release", last.ID, "outcome", last.Outcome)
		return last, last, false, nil
	}
	return nil, last, false, nil
}

// failApply handles an apply that failed after the dry-run passed (a race with another writer, a webhook):
// some objects may have changed, so the on-failure policy applies as to any failed release.
func (d *Deploy) failApply(ctx context.Context, c *kube.Client, store *release.Store, rec *release.Record, result *report.Result, policy OnFailure, err error) (*report.Result, error) {
	if cause := stopCause(ctx); cause != nil {
		return halt(ctx, store, rec, result, stageApplying, cause)
	}
	rec.Reason, rec.Message = "ApplyFailed", err.Error()
	result.Message = "apply failed: " + err.Error()
	result.AppliedAt = time.Now()
	return d.onFailure(ctx, c, store, rec, result, policy)
}

// onFailure carries out the on-failure policy for a failed release.
func (d *Deploy) onFailure(ctx context.Context, c *kube.Client, store *release.Store, rec *release.Record, result *report.Result, policy OnFailure) (*report.Result, error) {
	if cause := stopCause(ctx); cause != nil {
		return halt(ctx, store, rec, result, stageTracking, cause)
	}
	if note := irreversibleNote(rec); note != "" && (policy == OnFailureApprove || policy == OnFailureHold) {
		result.Message, rec.Message = oneLineJoin(result.Message, note), oneLineJoin(rec.Message, note)
	}
	// A release held for a decision is announced once, by approval_needed, which carries the failure too.
	if policy != OnFailureApprove && policy != OnFailureHold {
		d.Notify.Notify(releaseEvent(notify.ReleaseFailed, rec, result, c.Server))
	}
	switch policy {
	case OnFailureNone:
		result.Outcome = report.Failed
		return result, finish(ctx, store, rec, release.Failed)
	case OnFailureHold:
		rec.Approval = &release.Approval{RequestedAt: time.Now().UTC()}
		result.Outcome = report.PendingApproval
		result.Rollback = &report.Rollback{Outcome: report.PendingApproval, Message: fmt.Sprintf("held: roll back with `rollguard rollback %s -n %s`", rec.ID, rec.Namespace)}
		// The held record is what lets any machine decide later: a signal arriving during its write must not
		// cut it off (the API server may have stored it already) and turn a held release into an error.
		wctx, cancel := recordContext(ctx)
		defer cancel()
		if err := finish(wctx, store, rec, release.PendingApproval); err != nil {
			return result, err
		}
		d.Notify.Notify(approvalEvent(rec, result, c.Server, d.Dashboard, time.Time{}))
		return result, nil
	case OnFailureApprove:
		rec.Approval = &release.Approval{RequestedAt: time.Now().UTC()}
		rec.Outcome = release.PendingApproval
		wctx, cancel := recordContext(ctx) // as for OnFailureHold
		defer cancel()
		if err := store.Update(wctx, rec); err != nil {
			return result, err
		}
		crashpoint.Hit("approval:waiting")
		d.Notify.Notify(approvalEvent(rec, result, c.Server, d.Dashboard, time.Now().Add(d.approvalTimeout()).UTC()))
		decision, err := d.await(ctx, c, store, rec)
		if cause := stopCause(ctx); cause != nil {
			return halt(ctx, store, rec, result, stageApproval, cause)
		}
		if err != nil {
			return result, err
		}
		if decision == release.TimedOut {
			crashpoint.Hit("approval:timed-out")
		} else {
			crashpoint.Hit("approval:decided")
		}
		if decision == release.TimedOut && TimeoutAction(d.ApprovalTimeoutAction) == TimeoutReject || decision == release.Declined {
			result.Outcome = report.Failed
			result.Message += "; rollback " + decisionText(rec)
			return result, finish(ctx, store, rec, release.Rejected)
		}
	}
	// Only the lock's holder may roll back: a run whose lock was taken would undo the next run's release.
	if d.held != nil {
		if err := d.held.Verify(ctx); err != nil {
			return halt(ctx, store, rec, result, stageTracking, err)
		}
	}
	rb, err := restoreAndVerify(ctx, c, store, rec, d.Watch)
	rb.ToRelease = lastGood(context.WithoutCancel(ctx), store, rec)
	d.notifyRollback(ctx, rec, rb, c.Server, err)
	result.Rollback = rb
	result.FinishedAt = time.Now()
	if cause := stopCause(ctx); cause != nil {
		return halt(ctx, store, rec, result, stageRollback, cause)
	}
	if err != nil {
		return result, err
	}
	if rb.Outcome == report.Succeeded {
		result.Outcome = report.RolledBack
	} else {
		result.Outcome = report.RollbackFailed
	}
	return result, nil
}

func decisionText(rec *release.Record) string {
	if rec.Approval == nil {
		return "not approved"
	}
	switch rec.Approval.Decision {
	case release.Declined:
		return "rejected by " + rec.Approval.By
	case release.TimedOut:
		return "not approved in time"
	}
	return rec.Approval.Decision
}

// await waits for a decision on a held rollback: `rollguard approve|reject` from any machine with access
// to the cluster (seen through a watch on the record), or an answer at the terminal prompt.
func (d *Deploy) await(ctx context.Context, c *kube.Client, store *release.Store, rec *release.Record) (string, error) {
	timeout := d.approvalTimeout()
	if d.Notice != nil {
		fmt.Fprintf(d.Notice, "release %s failed: %s\nwaiting up to %s for a decision: rollguard approve %s -n %s  |  rollguard reject %s -n %s\n",
			rec.ID, rec.Message, timeout, rec.ID, rec.Namespace, rec.ID, rec.Namespace)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if d.Prompt != nil {
		go d.prompt(wctx, c, store, rec)
	}
	name := release.SecretName(rec.ID)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return c.Typed.CoreV1().Secrets(rec.Namespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return c.Typed.CoreV1().Secrets(rec.Namespace).Watch(ctx, o)
		},
	}
	var decided *release.Record
	_, err := watchtools.UntilWithSync(wctx, lw, &corev1.Secret{}, nil, func(watch.Event) (bool, error) {
		r, err := store.Get(wctx, rec.Namespace, rec.ID)
		if err != nil {
			return false, err
		}
		if r.Approval != nil && r.Approval.Decision != "" {
			decided = r
			return true, nil
		}
		crashpoint.Hit("approval:watching")
		return false, nil
	})
	switch {
	case decided != nil:
		*rec = *decided
		return rec.Approval.Decision, nil
	case ctx.Err() != nil:
		return "", ctx.Err()
	case errors.Is(err, wait.ErrWaitTimeout) || wctx.Err() != nil:
		updated, err := store.Modify(ctx, rec.Namespace, rec.ID, func(r *release.Record) error {
			if r.Approval == nil {
				r.Approval = &release.Approval{}
			}
			if r.Approval.Decision == "" {
				r.Approval.Decision, r.Approval.By, r.Approval.At = release.TimedOut, "rollguard", time.Now().UTC()
			}
			return nil
		})
		if err != nil {
			return "", err
		}
		*rec = *updated
		return rec.Approval.Decision, nil
	default:
		return "", fmt.Errorf("waiting for a decision on %s: %w", rec.ID, err)
	}
}

func (d *Deploy) approvalTimeout() time.Duration {
	if d.ApprovalTimeout <= 0 {
		return 24 * time.Hour
	}
	return d.ApprovalTimeout
}

// prompt asks at the terminal and records the answer like `rollguard approve|reject` would.
func (d *Deploy) prompt(ctx context.Context, c *kube.Client, store *release.Store, rec *release.Record) {
	fmt.Fprintf(d.Notice, "Roll back %s to its previous state? [y/n] ", rec.ID)
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(d.Prompt).ReadString('\n')
		answer <- strings.ToLower(strings.TrimSpace(line))
	}()
	select {
	case <-ctx.Done():
		return
	case a := <-answer:
		approve := a == "y" || a == "yes"
		if !approve && a != "n" && a != "no" {
			return
		}
		_, _ = Decide(ctx, c, store, rec.Namespace, rec.ID, approve, d.Getenv)
	}
}

// Decide records an approval or rejection of a held rollback.
func Decide(ctx context.Context, c *kube.Client, store *release.Store, ns, id string, approve bool, getenv func(string) string) (*release.Record, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	by := release.Identity(ctx, c, manifest.DetectCI(getenv))
	return store.Modify(ctx, ns, id, func(r *release.Record) error {
		if r.Outcome != release.PendingApproval {
			return exitcode.BadInputf("release %s is not waiting for a decision (it is %s)", r.ID, r.Outcome.Text())
		}
		if r.Approval == nil {
			r.Approval = &release.Approval{}
		}
		if r.Approval.Decision != "" {
			return exitcode.BadInputf("release %s was already %s by %s", r.ID, r.Approval.Decision, r.Approval.By)
		}
		r.Approval.Decision = release.Declined
		if approve {
			r.Approval.Decision = release.Approved
		}
		r.Approval.By, r.Approval.At = by, time.Now().UTC()
		return nil
	})
}
