package action

import (
	"context"
	"errors"
	"time"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/lock"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
)

// Decision is `rollguard approve|reject RELEASE`. When a deploy waits for the decision (it holds the app's
// lock) the decision is recorded for it to act on. When none waits — the release was held with
// --on-failure=hold, or the waiting run died — the decision is carried out here: an approval rolls back
// and proves the rollback healthy, a rejection closes the release as rejected.
type Decision struct {
	Connect Connector
	Watch
	Namespace string
	Release   string
	Approve   bool
	Getenv    func(string) string
	LockTTL   time.Duration
}

// DecisionResult says what the decision did: recorded for a waiting deploy, or carried out (Result set).
type DecisionResult struct {
	Record *release.Record
	// Result is the rollback's result when this run carried an approval out; nil otherwise.
	Result *report.Result
}

// Run records the decision and, when no deploy waits for it, carries it out.
func (d *Decision) Run(ctx context.Context) (*DecisionResult, error) {
	c, err := d.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ns := d.Namespace
	if ns == "" {
		ns = c.Namespace
	}
	store := release.NewStore(c)
	rec, err := store.Get(ctx, ns, d.Release)
	if err != nil {
		return nil, err
	}
	if rec.Outcome != release.PendingApproval {
		return nil, exitcode.BadInputf("release %s is not waiting for a decision (it is %s)", rec.ID, rec.Outcome.Text())
	}
	lk, err := lock.Acquire(ctx, c, ns, rec.App, lock.Options{TTL: d.LockTTL})
	var held *lock.HeldError
	if errors.As(err, &held) {
		// A deploy is waiting: it watches the record and acts on the decision itself.
		rec, err := Decide(ctx, c, store, ns, rec.ID, d.Approve, d.Getenv)
		return &DecisionResult{Record: rec}, err
	}
	if err != nil {
		return nil, err
	}
	defer lk.Release(context.WithoutCancel(ctx))
	ctx, cancel := holdLock(ctx, lk, d.logger(), rec.App)
	defer cancel()
	if rec, err = Decide(ctx, c, store, ns, rec.ID, d.Approve, d.Getenv); err != nil {
		return nil, err
	}
	if !d.Approve {
		return &DecisionResult{Record: rec}, finish(ctx, store, rec, release.Rejected)
	}
	result := &report.Result{Command: "approve", Release: rec.ID, Namespace: ns, ChangeCause: rec.ChangeCause}
	rb, err := restoreAndVerify(ctx, c, store, rec, d.Watch)
	rb.ToRelease = lastGood(ctx, store, rec)
	d.notifyRollback(ctx, rec, rb, c.Server, err)
	// The workloads this run tracked are the restored ones.
	result.Rollback, result.Workloads, result.FinishedAt = rb, rb.Workloads, time.Now()
	if cause := stopCause(ctx); cause != nil {
		result, err := halt(ctx, store, rec, result, stageRollback, cause)
		return &DecisionResult{Record: rec, Result: result}, err
	}
	if err != nil {
		return &DecisionResult{Record: rec, Result: result}, err
	}
	if rb.Outcome == report.Succeeded {
		result.Outcome, result.Message = report.Succeeded, "release "+rec.ID+" rolled back; "+rb.Message
	} else {
		result.Outcome, result.Message = report.RollbackFailed, "rollback of "+rec.ID+" failed: "+rb.Message
	}
	return &DecisionResult{Record: rec, Result: result}, nil
}
