package action

import (
	"context"
	"time"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/track"
)

// workloadChange is a change made to one live workload rather than from manifests — an undo, a rollback to
// the previous image — run as a release: recorded first with the workload's previous state, then made,
// then tracked like a deploy, and finished in the record. The caller holds the app's lock.
type workloadChange struct {
	Watch
	Command, App, Cause string
	// Undo marks the record as an undo's.
	Undo bool
	// Images are the workload's images after the change, when the caller knows them.
	Images []string
	// Point is the crash point hit once the change is recorded ("" for none).
	Point  string
	Getenv func(string) string
	// Apply makes the change; its error ends the run, the record marked failed with its message.
	Apply func(ctx context.Context) error
}

func (ch *workloadChange) run(ctx context.Context, c *kube.Client, w *workload) (*report.Result, error) {
	store := release.NewStore(c)
	getenv := ch.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	ci := manifest.DetectCI(getenv)
	prevRev, prevHash, err := release.CurrentRevision(ctx, c, w.target.Kind, w.target.Namespace, w.target.Name)
	if err != nil {
		return nil, err
	}
	rec := &release.Record{
		App: ch.App, Namespace: w.target.Namespace, DeployedBy: release.Identity(ctx, c, ci), CI: ci,
		ChangeCause: ch.Cause, Undo: ch.Undo,
		Objects: []release.ObjectState{{APIVersion: w.live.GetAPIVersion(), Kind: w.live.GetKind(), Namespace: w.target.Namespace,
			Name: w.target.Name, Existed: true, Previous: release.Capture(w.live)}},
		Workloads: []release.WorkloadState{{Kind: w.target.Kind, Namespace: w.target.Namespace, Name: w.target.Name,
			PreviousRevision: prevRev, PreviousTemplateHash: prevHash, Images: ch.Images}},
	}
	records, err := store.List(ctx, w.target.Namespace, ch.App)
	if err != nil {
		return nil, err
	}
	// A rollback of a release only when the workload runs what that release rolled out: after a change made
	// with kubectl (or anything else), the change undoes that, not the release.
	if len(records) > 0 && madeRevision(records[0], w.target, prevRev, prevHash) {
		rec.RollbackOf = records[0].ID
	}
	if err := store.Create(ctx, rec); err != nil {
		return nil, err
	}
	if ch.Point != "" {
		crashpoint.Hit(ch.Point)
	}
	result := &report.Result{Command: ch.Command, Release: rec.ID, Namespace: w.target.Namespace, ChangeCause: rec.ChangeCause}
	started := time.Now()
	if err := ch.Apply(ctx); err != nil {
		rec.Message = err.Error()
		_ = finish(context.WithoutCancel(ctx), store, rec, release.Failed)
		return nil, err
	}
	result.AppliedAt = time.Now()
	rec.Outcome, rec.Timings.AppliedAt = release.Tracking, result.AppliedAt.UTC()
	if err := store.Update(ctx, rec); err != nil {
		return result, err
	}
	ws, err := ch.track(ctx, c, []track.Target{w.target}, started.Add(-2*time.Second), result.AppliedAt)
	result.Workloads, result.FinishedAt = ws, time.Now()
	if err != nil {
		if cause := stopCause(ctx); cause != nil {
			return halt(ctx, store, rec, result, stageTracking, cause)
		}
		return result, err
	}
	recordVerdicts(rec, ws)
	// The revision the change went to, and the release that made it: history shows both from the record.
	recordRevisions(ctx, c, rec)
	rec.RestoresTo = madeBy(records, rec.Workloads[0])
	result.Outcome, result.Message = outcomeOf(ws), summary(ws)
	outcome := release.Succeeded
	if result.Outcome != report.Succeeded {
		outcome = release.Failed
	}
	return result, finish(ctx, store, rec, outcome)
}
