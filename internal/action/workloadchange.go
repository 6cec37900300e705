package action

import (
	"context"
	"time"

	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/revision"
	"github.com/rollguard/rollguard/internal/track"
)

// workloadChange is a change made to one live workload rather than from manifests — an undo, a rollback to
// the previous image — run as a release by changePhases: recorded first with the workload's previous state,
// then made, then tracked like a deploy, and finished in the record. The action's own phases fill it
// (State.change), with the workload (State.workload), App and Cause, and hold the app's lock.
type workloadChange struct {
	Command string
	// Undo marks the record as an undo's.
	Undo bool
	// Images are the workload's images after the change, when the caller knows them.
	Images []string
	// Point is the crash point hit once the change is recorded ("" for none).
	Point string
	// Apply makes the change; its error ends the run, the record marked failed with its message.
	Apply func(ctx context.Context) error
}

// changePhases are the steps every change to one live workload shares, after the action's own (check,
// connect, lock, choosing the change): record → apply → track → decide.
func changePhases(w Watch) []Phase {
	return []Phase{
		{Name: "record", Run: recordChange},
		{Name: "apply", Run: applyChange},
		haltWhenStopped(trackPhase(w, ""), stageTracking),
		{Name: "decide", Run: decideChange},
	}
}

// recordChange records the workload's current state as the release's previous state before anything
// changes. Reads Client, Store, App, Cause, workload, change; fills Record and records.
func recordChange(ctx context.Context, s *State) error {
	c, w, ch := s.Client, s.workload, s.change
	getenv := s.getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	ci := manifest.DetectCI(getenv)
	prevRev, prevHash, err := revision.Current(ctx, c, w.target.Kind, w.target.Namespace, w.target.Name)
	if err != nil {
		return err
	}
	rec := &release.Record{
		App: s.App, Namespace: w.target.Namespace, DeployedBy: release.Identity(ctx, c, ci), CI: ci,
		ChangeCause: s.Cause, Undo: ch.Undo,
		Objects: []release.ObjectState{{APIVersion: w.live.GetAPIVersion(), Kind: w.live.GetKind(), Namespace: w.target.Namespace,
			Name: w.target.Name, Existed: true, Previous: release.Capture(w.live)}},
		Workloads: []release.WorkloadState{{Kind: w.target.Kind, Namespace: w.target.Namespace, Name: w.target.Name,
			PreviousRevision: prevRev, PreviousTemplateHash: prevHash, Images: ch.Images}},
	}
	records, err := s.Store.List(ctx, w.target.Namespace, s.App)
	if err != nil {
		return err
	}
	// A rollback of a release only when the workload runs what that release rolled out: after a change made
	// with kubectl (or anything else), the change undoes that, not the release.
	if len(records) > 0 && madeRevision(records[0], w.target, prevRev, prevHash) {
		rec.RollbackOf = records[0].ID
	}
	if err := s.Store.Create(ctx, rec); err != nil {
		return err
	}
	hit(ch.Point)
	s.Record, s.records = rec, records
	return nil
}

// applyChange makes the change and marks the record tracking. Fills Result, Started, Since and Targets.
func applyChange(ctx context.Context, s *State) error {
	rec, w := s.Record, s.workload
	s.Started = time.Now()
	if err := s.change.Apply(ctx); err != nil {
		rec.Message = err.Error()
		_ = finish(context.WithoutCancel(ctx), s.Store, rec, release.Failed)
		return err
	}
	s.Result = &report.Result{Command: s.change.Command, Release: rec.ID, Namespace: w.target.Namespace, ChangeCause: rec.ChangeCause,
		AppliedAt: time.Now()}
	rec.Outcome, rec.Timings.AppliedAt = release.Tracking, s.Result.AppliedAt.UTC()
	if err := s.Store.Update(ctx, rec); err != nil {
		return err
	}
	s.Targets, s.Since = []track.Target{w.target}, s.Result.AppliedAt
	return nil
}

// decideChange records the verdict, the revision the change went to and the release that made it (history
// shows both from the record), and finishes the record.
func decideChange(ctx context.Context, s *State) error {
	rec, result := s.Record, s.Result
	recordVerdicts(rec, s.Workloads)
	recordRevisions(ctx, s.Client, rec, s.Workloads)
	rec.RestoresTo = madeBy(s.records, rec.Workloads[0])
	result.Outcome, result.Message = outcomeOf(s.Workloads), summary(s.Workloads)
	outcome := release.Succeeded
	if result.Outcome != report.Succeeded {
		outcome = release.Failed
	}
	return finish(ctx, s.Store, rec, outcome)
}
