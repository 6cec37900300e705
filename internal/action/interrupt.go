package action

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/lock"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
)

// A run stops early for one of two reasons: its lock was taken away (another run now owns the app), or it
// was interrupted (SIGINT/SIGTERM cancel the root context). Either way it must stop changing the cluster
// at once, and still say where it stopped: in the record, in its reports and in its exit code.

// Stages a run can be stopped in, as the record and the report name them.
const (
	stageApplying  = "applying"
	stageTracking  = "tracking the rollout"
	stageApproval  = "waiting for a decision on the rollback"
	stageRollback  = "rolling back"
	stageFinishing = "finishing"
)

// holdLock returns ctx, cancelled with cause lock.ErrLost the moment lk is lost.
func holdLock(ctx context.Context, lk *lock.Lock, log *slog.Logger, app string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-lk.Lost():
			log.Error("lost the release lock; stopping", "app", app)
			cancel(lock.ErrLost)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}

// stopCause is why the run must stop now, or nil while it may go on.
func stopCause(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	return context.Cause(ctx)
}

// recordContext is the context for a record write that a stopping run must still finish: the run's
// cancellation does not cut it, a timeout bounds it.
func recordContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// halt closes a stopped run without changing the cluster: the record says where it stopped and why, and
// the result says the state and what to run next. Only the record is written, with recordContext since
// ctx is already cancelled.
func halt(ctx context.Context, store *release.Store, rec *release.Record, result *report.Result, stage string, cause error) (*report.Result, error) {
	wctx, cancel := recordContext(ctx)
	defer cancel()
	result.FinishedAt = time.Now()
	where := fmt.Sprintf("-n %s", rec.Namespace)
	if errors.Is(cause, lock.ErrLost) {
		by := "another run"
		if latest, err := store.Latest(wctx, rec.Namespace, rec.App); err == nil && latest != nil && latest.ID != rec.ID {
			by = latest.ID
		}
		rec.Outcome, rec.Reason = release.Superseded, "Superseded"
		rec.Message = fmt.Sprintf("stopped while %s: %s; %s now deploys %s", stage, lock.ErrLost, by, rec.App)
		result.Outcome = report.Superseded
		result.Message = fmt.Sprintf("%s was superseded while %s: its lock was taken away and %s now deploys %s; this run changed nothing after that and did not verify the release (see rollguard history %s %s)",
			rec.ID, stage, by, rec.App, rec.App, where)
		rec.Timings.FinishedAt = time.Now().UTC()
		return result, store.Update(wctx, rec)
	}
	switch stage {
	case stageApproval:
		// The release stays pending: any machine can still decide, and `approve` carries it out.
		result.Outcome = report.PendingApproval
		result.Message = fmt.Sprintf("interrupted (%v) while waiting for a decision; %s stays held: rollguard approve %s %s rolls it back, rollguard reject %s %s keeps it",
			cause, rec.ID, rec.ID, where, rec.ID, where)
		if result.Rollback == nil {
			result.Rollback = &report.Rollback{Outcome: report.PendingApproval}
		}
		result.Rollback.Message = "held: " + result.Message
		return result, nil
	case stageRollback:
		// Left rolling_back: the next run of the app (deploy or rollback) finishes the rollback.
		rec.Outcome = release.RollingBack
		rec.Message = fmt.Sprintf("interrupted (%v) while rolling back", cause)
		result.Outcome = report.Interrupted
		result.Message = fmt.Sprintf("interrupted (%v) while rolling back %s; the rollback is unfinished: rollguard rollback %s %s finishes it", cause, rec.ID, rec.ID, where)
	default:
		rec.Outcome, rec.Reason = release.Interrupted, "Interrupted"
		rec.Message = fmt.Sprintf("interrupted (%v) while %s; applied but not verified", cause, stage)
		rec.Timings.FinishedAt = time.Now().UTC()
		result.Outcome = report.Interrupted
		result.Message = fmt.Sprintf("interrupted (%v) while %s; %s is applied but not verified: run the deploy again to finish it, or rollguard rollback %s %s to restore the previous state",
			cause, stage, rec.ID, rec.ID, where)
	}
	return result, store.Update(wctx, rec)
}

// stoppedBeforeChange is the error of a run stopped before it recorded or changed anything.
func stoppedBeforeChange(ctx context.Context, err error) error {
	cause := stopCause(ctx)
	if cause == nil {
		return err
	}
	if errors.Is(cause, lock.ErrLost) {
		return exitcode.New(exitcode.NotRecovered, fmt.Errorf("superseded before anything changed: %w", cause))
	}
	return exitcode.BadInputf("interrupted (%v) before anything changed; nothing to undo", cause)
}
