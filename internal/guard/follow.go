package guard

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/lock"
	"github.com/rollguard/rollguard/internal/notify"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
)

// guardLockTTL is how long the guard's hold on an app's lock outlives a killed guard.
const guardLockTTL = 15 * time.Second

// follower follows one rollout of one workload until its verdict is acted on.
type follower struct {
	hash string
	// seen is when the guard saw the rollout start, since when it began following it (its record
	// written): a signal between the two waited for the record's API round trips.
	seen, since time.Time
	// ctx ends when the guard stops leading or the follower is stopped.
	ctx        context.Context
	cancel     context.CancelFunc
	superseded atomic.Bool
	// rolling is set while the rollback runs: a template change then is the rollback's own.
	rolling atomic.Bool
}

func (f *follower) busy() bool  { return f.rolling.Load() }
func (f *follower) stop()       { f.cancel() }
func (f *follower) supersede()  { f.superseded.Store(true); f.cancel() }
func (f *follower) setRolling() { f.rolling.Store(true) }

// follow starts following rec's rollout, seen at seen, in the background.
func (g *Guard) follow(k key, hash string, rec *release.Record, pol Policy, seen time.Time) {
	f := g.attach(k, hash)
	if f == nil {
		return
	}
	f.seen = seen
	go g.run(k, f, rec, pol)
}

// finishRollback finishes, in the background, a rollback that a killed guard left half-done.
func (g *Guard) finishRollback(k key, hash string, rec *release.Record, pol Policy) {
	f := g.attach(k, hash)
	if f == nil {
		return
	}
	f.setRolling()
	go func() {
		defer g.detach(k, f)
		// The killed guard's hold on the app's lock outlives it by the lock's TTL: wait that out.
		g.rollback(f.ctx, k, nil, rec, pol, guardLockTTL+5*time.Second)
	}()
}

// attach registers a follower for a workload, unless one is already there.
func (g *Guard) attach(k key, hash string) *follower {
	st := g.stateOf(k)
	g.mu.Lock()
	defer g.mu.Unlock()
	if st.follow != nil || g.ctx == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(g.ctx)
	f := &follower{hash: hash, since: time.Now(), ctx: ctx, cancel: cancel}
	st.follow = f
	g.metrics.active.Inc()
	return f
}

func (g *Guard) detach(k key, f *follower) {
	f.cancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	if st := g.state[k]; st != nil && st.follow == f {
		st.follow = nil
	}
	g.metrics.active.Dec()
}

// run re-diagnoses the rollout from the caches every tick until it is healthy or failed, then acts on the
// verdict by the workload's policy.
func (g *Guard) run(k key, f *follower, rec *release.Record, pol Policy) {
	ctx := f.ctx
	defer g.detach(k, f)

	started := rec.Timings.AppliedAt
	if started.IsZero() {
		started = rec.CreatedAt
	}
	ticker := time.NewTicker(g.opts.Tick)
	defer ticker.Stop()
	// As the tracker of a deploy does: a rule's wait is judged again when it ends, and counts from when the
	// guard first saw the state it waits on (Verdict.Due, Verdict.Anchors).
	var seen map[string]time.Time
	due := time.NewTimer(time.Hour)
	due.Stop()
	defer due.Stop()
	for {
		w := newObject(k.kind)
		err := g.cache.Get(ctx, types.NamespacedName{Namespace: k.namespace, Name: k.name}, w)
		switch {
		case apierrors.IsNotFound(err):
			rec.Message = k.kind + "/" + k.name + " was deleted during its rollout"
			_ = g.finish(context.WithoutCancel(ctx), rec, release.Failed)
			return
		case err == nil:
			in, err := g.input(ctx, w)
			if err != nil {
				break
			}
			in.Now, in.Started = time.Now(), started.Add(-2*time.Second)
			in.Deadline = started.Add(pol.Timeout)
			// As the tracker of a deploy does: an unschedulable pod waits longer where nodes can be added.
			in.Autoscaler = g.autoscaler(ctx)
			in.Seen = seen
			v := diagnose.Diagnose(in, pol.Thresholds)
			seen = v.Sighted(seen, time.Now())
			if !v.Due.IsZero() {
				due.Reset(time.Until(v.Due))
			}
			switch v.Status {
			case diagnose.Healthy:
				g.healthy(ctx, k, w, rec, v)
				return
			case diagnose.Failed:
				g.failed(ctx, k, f, w, rec, pol, v)
				return
			}
		}
		select {
		case <-ctx.Done():
			if f.superseded.Load() {
				rec.Message = "the pod template changed again before this rollout finished"
				_ = g.finish(context.WithoutCancel(ctx), rec, release.Superseded)
				g.metrics.rollouts.WithLabelValues("superseded").Inc()
			}
			// Otherwise the guard is stopping: the record stays tracking for the next leader to resume.
			return
		case <-ticker.C:
		case <-due.C:
		}
	}
}

func (g *Guard) healthy(ctx context.Context, k key, w client.Object, rec *release.Record, v diagnose.Verdict) {
	rec.Workloads[0].Status = diagnose.Healthy
	if err := g.finish(ctx, rec, release.Succeeded); err != nil {
		g.log.Error("recording a healthy rollout", "release", rec.ID, "error", err)
	}
	st := g.stateOf(k)
	g.mu.Lock()
	st.baseline = rec.Workloads[0].NewTemplateHash
	g.mu.Unlock()
	g.metrics.rollouts.WithLabelValues("healthy").Inc()
	g.event(w, corev1.EventTypeNormal, "RolloutHealthy", "release %s is healthy: %s", rec.ID, v.Progress)
}

// failed acts on a failed rollout: the verdict goes into the record and an Event, then the policy runs.
func (g *Guard) failed(ctx context.Context, k key, f *follower, w client.Object, rec *release.Record, pol Policy, v diagnose.Verdict) {
	now := time.Now()
	if !v.Since.IsZero() && now.After(v.Since) {
		g.metrics.verdict.Observe(now.Sub(v.Since).Seconds())
	}
	g.metrics.changeToVerdict.Observe(now.Sub(rec.Timings.AppliedAt).Seconds())
	g.metrics.rollouts.WithLabelValues("failed").Inc()
	rec.Workloads[0].Status, rec.Workloads[0].Reason = v.Status, v.Reason
	rec.Reason, rec.Message = string(v.Reason), v.Workload+": "+v.Message
	g.event(w, corev1.EventTypeWarning, "RolloutFailed", "release %s failed: %s: %s", rec.ID, v.Reason, v.Message)
	g.opts.Notify.Notify(g.notice(notify.ReleaseFailed, rec, &v))
	g.log.Warn("rollout failed", "workload", k.String(), "release", rec.ID, "reason", v.Reason, "message", v.Message,
		"signal", v.Since.UTC().Format(time.RFC3339Nano), "seen", f.seen.UTC().Format(time.RFC3339Nano), "following", f.since.UTC().Format(time.RFC3339Nano),
		"verdict", now.UTC().Format(time.RFC3339Nano))
	if pol.OnFailure == OnFailureRollback && rec.Objects[0].Previous == nil {
		rec.Message += " (no earlier revision to roll back to)"
		pol.OnFailure = OnFailureNone
	}
	switch pol.OnFailure {
	case OnFailureNone:
		g.markHandled(k, f.hash)
		if err := g.finish(ctx, rec, release.Failed); err != nil {
			g.log.Error("recording a failed rollout", "release", rec.ID, "error", err)
		}
	case OnFailureHold:
		g.hold(ctx, k, f, w, rec)
	default:
		if err := g.store.Update(ctx, rec); err != nil {
			g.log.Error("recording a failed rollout", "release", rec.ID, "error", err)
			return
		}
		f.setRolling()
		g.rollback(ctx, k, w, rec, pol, 0)
	}
}

// hold records a pending approval that `rollguard approve|reject` decides, under the app's lock.
func (g *Guard) hold(ctx context.Context, k key, f *follower, w client.Object, rec *release.Record) {
	g.markHandled(k, f.hash)
	lk, err := lock.Acquire(ctx, g.kc, k.namespace, rec.App, lock.Options{Holder: g.holder(), TTL: guardLockTTL})
	if err != nil {
		g.log.Warn("not holding: the app is locked", "release", rec.ID, "error", err)
		return
	}
	defer lk.Release(context.WithoutCancel(ctx))
	rec.Approval = &release.Approval{RequestedAt: time.Now().UTC()}
	if err := g.finish(ctx, rec, release.PendingApproval); err != nil {
		g.log.Error("recording a held rollout", "release", rec.ID, "error", err)
		return
	}
	g.metrics.held.Inc()
	g.opts.Notify.Notify(g.notice(notify.GuardHold, rec, nil))
	g.event(w, corev1.EventTypeWarning, "RolloutHeld", "release %s held for a decision: rollguard approve %s -n %s rolls it back, rollguard reject %s -n %s keeps it",
		rec.ID, rec.ID, k.namespace, rec.ID, k.namespace)
}

// rollback is `rollguard rollback RELEASE` run by the guard: the same action restores the recorded
// previous state under the app's lock and proves it healthy with the same tracker.
//
// wait is how long to wait for the app's lock: 0 when a deploy holding it means the rollout is the deploy's.
func (g *Guard) rollback(ctx context.Context, k key, w client.Object, rec *release.Record, pol Policy, wait time.Duration) {
	if w == nil {
		w = newObject(k.kind)
		if err := g.cache.Get(ctx, types.NamespacedName{Namespace: k.namespace, Name: k.name}, w); err != nil {
			w.SetNamespace(k.namespace)
			w.SetName(k.name)
		}
	}
	rb := &action.Rollback{
		Connect:   func(context.Context) (*kube.Client, error) { return g.kc, nil },
		Watch:     action.Watch{Timeout: pol.Timeout, Thresholds: pol.Thresholds, Log: g.log, Notify: g.opts.Notify, Source: newSource(g)},
		Namespace: k.namespace, Release: rec.ID, LockTTL: guardLockTTL, WaitForLock: wait,
	}
	if k.kind == "StatefulSet" && len(rec.Workloads) > 0 && rec.Workloads[0].NewTemplateHash != "" {
		uctx, stop := context.WithCancel(ctx)
		defer stop()
		go g.unstick(uctx, k, rec.Workloads[0].NewTemplateHash)
	}
	res, err := rb.Run(ctx)
	var held *lock.HeldError
	if err != nil && !errors.As(err, &held) {
		// Whoever held the lock meanwhile (a deploy converging what a killed guard left) may have
		// finished this rollback already.
		if cur, gerr := g.store.Get(context.WithoutCancel(ctx), k.namespace, rec.ID); gerr == nil && cur.Outcome == release.RolledBack {
			return
		}
	}
	switch {
	case errors.As(err, &held):
		g.metrics.rollbacks.WithLabelValues("left-to-deploy").Inc()
		g.log.Info("rollback left to the run holding the app's lock", "workload", k.String(), "release", rec.ID, "holder", held.Holder)
		g.event(w, corev1.EventTypeNormal, "RollbackLeft", "release %s failed, but %s holds the app's lock: the rollout is left to it", rec.ID, held.Holder)
	case err != nil || res == nil:
		g.metrics.rollbacks.WithLabelValues("failed").Inc()
		g.log.Error("rollback failed", "workload", k.String(), "release", rec.ID, "error", err)
		g.event(w, corev1.EventTypeWarning, "RollbackFailed", "rolling back release %s failed: %v", rec.ID, err)
	case res.Outcome == report.Succeeded:
		g.metrics.rollbacks.WithLabelValues("healthy").Inc()
		if !rec.Timings.AppliedAt.IsZero() {
			g.metrics.changeToHealthy.Observe(time.Since(rec.Timings.AppliedAt).Seconds())
		}
		g.event(w, corev1.EventTypeNormal, "RolledBack", "rolled back by guard: release %s (%s) returned to revision %s, proven healthy: %s",
			rec.ID, rec.Reason, prevRevision(rec), res.Rollback.Message)
		g.log.Info("rolled back", "workload", k.String(), "release", rec.ID, "healthy", time.Now().UTC().Format(time.RFC3339Nano))
	default:
		g.metrics.rollbacks.WithLabelValues("failed").Inc()
		g.log.Error("rollback not healthy", "workload", k.String(), "release", rec.ID, "message", res.Message)
		g.event(w, corev1.EventTypeWarning, "RollbackFailed", "release %s: %s", rec.ID, res.Message)
	}
}

// notice is a notification about one of the guard's records; v, when set, supplies the evidence. A
// held rollout carries the commands that decide it.
func (g *Guard) notice(kind notify.Kind, rec *release.Record, v *diagnose.Verdict) notify.Event {
	e := notify.Event{
		Kind: kind, App: rec.App, Cluster: g.kc.Server, Namespace: rec.Namespace, Release: rec.ID,
		Reason: rec.Reason, Message: rec.Message, DeployedBy: rec.DeployedBy, ChangeCause: rec.ChangeCause,
	}
	if v != nil {
		e.Workload, e.Fix = v.Workload, v.Fix
		var lines []string
		for _, ev := range v.Evidence {
			lines = append(lines, ev.Object+": "+ev.Text)
		}
		e.Evidence = notify.Summarize(lines)
	}
	if kind == notify.GuardHold {
		approve, reject := notify.Commands(rec.ID, rec.Namespace)
		e.Approval = &notify.Approval{ApproveCommand: approve, RejectCommand: reject,
			Dashboard: action.DashboardLink(g.opts.Dashboard, rec.Namespace, rec.App, rec.ID)}
	}
	return e
}

func prevRevision(rec *release.Record) string {
	if len(rec.Workloads) == 0 || rec.Workloads[0].PreviousRevision == 0 {
		return "the last healthy one"
	}
	return fmt.Sprint(rec.Workloads[0].PreviousRevision)
}
