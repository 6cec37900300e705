package action

import (
	"context"
	"strings"
	"time"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/lock"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
)

// Rollback restores a recorded release's previous state and proves it healthy: the later-job half of
// `deploy --on-failure=hold`, or a manual rollback of the latest release.
type Rollback struct {
	Connect Connector
	Watch
	Namespace string
	// Release is the record ID ("web.v7"); with Last, the newest record of App is used instead.
	Release string
	App     string
	Last    bool
	// SkipNewer allows rolling back a release that is not the app's current one: the newer releases'
	// changes to the same objects are undone with it, and the record names them.
	SkipNewer   bool
	WaitForLock time.Duration
	LockTTL     time.Duration
}

// Phases is the rollback, step by step: the record is found, the app locked (losing the lock stops the
// run), newer releases refused unless --skip-newer, then the release's previous state restored and proved
// healthy (restorePhases, shared with approve and the deploy's on-failure rollback).
func (r *Rollback) Phases() []Phase {
	return []Phase{
		{Name: "check", Run: r.check},
		{Name: "connect", Run: r.connect},
		{Name: "find", Run: r.find},
		lockPhase(r.Watch, lock.Options{Wait: r.WaitForLock, TTL: r.LockTTL}, "", true),
		{Name: "newer", Run: r.newer},
		{Name: "restore", Run: r.restore},
	}
}

// Run rolls the release back and tracks the restored workloads.
func (r *Rollback) Run(ctx context.Context) (*report.Result, error) {
	return runPhases(ctx, &State{log: r.logger()}, r.Phases())
}

// check validates the options before any network call.
func (r *Rollback) check(context.Context, *State) error {
	if r.Timeout <= 0 {
		return exitcode.BadInputf("--timeout must be positive, got %s", r.Timeout)
	}
	if r.Release != "" && r.Last {
		return exitcode.BadInputf("pass either a RELEASE or --last --app NAME, not both")
	}
	if r.Release == "" && !r.Last {
		return exitcode.BadInputf("name the release to roll back (e.g. rollguard rollback web.v7) or pass --last --app NAME")
	}
	// Without --app, "the newest release" would be any app's: never roll back one the user did not name.
	if r.Last && r.App == "" {
		return exitcode.BadInputf("--last needs --app NAME: say whose newest release to roll back")
	}
	return nil
}

// connect opens the cluster. Fills Client, Store and Namespace.
func (r *Rollback) connect(ctx context.Context, s *State) error {
	c, err := r.Connect(ctx)
	if err != nil {
		return err
	}
	s.Client, s.Store, s.Namespace = c, release.NewStore(c), r.Namespace
	if s.Namespace == "" {
		s.Namespace = c.Namespace
	}
	return nil
}

// find reads the release to roll back: the one named, or with --last the app's newest. Fills Record, App.
func (r *Rollback) find(ctx context.Context, s *State) error {
	var rec *release.Record
	var err error
	if r.Last {
		if rec, err = s.Store.Latest(ctx, s.Namespace, r.App); err != nil {
			return err
		}
		if rec == nil {
			return exitcode.BadInputf("app %q has no release in namespace %q", r.App, s.Namespace)
		}
	} else if rec, err = s.Store.Get(ctx, s.Namespace, r.Release); err != nil {
		return err
	}
	switch rec.Outcome {
	case release.RolledBack:
		return exitcode.BadInputf("release %s is already rolled back", rec.ID)
	case release.Applying, release.Tracking, release.RollingBack:
		// A killed run: the lock makes sure it is really gone.
	}
	s.Record, s.App = rec, rec.App
	return nil
}

// newer refuses, under the lock, to roll back a release that is not the app's current one unless
// --skip-newer says to undo the newer ones too.
func (r *Rollback) newer(ctx context.Context, s *State) error {
	rec := s.Record
	newer, err := newerReleases(ctx, s.Store, rec)
	if err != nil {
		return err
	}
	if len(newer) > 0 && !r.SkipNewer {
		return exitcode.BadInputf("%s is not the current release of %s (%s is, deployed after it): roll back %s instead, or pass --skip-newer to also undo %s; nothing was changed",
			rec.ID, rec.App, newer[0], newer[0], strings.Join(newer, ", "))
	}
	rec.Skipped = newer
	crashpoint.Hit("rollback:locked")
	return nil
}

// restore restores the release's previous state and proves it healthy (restorePhases), notifies, and
// reports; a run stopped on the way records where it stopped. Fills Result.
func (r *Rollback) restore(ctx context.Context, s *State) error {
	rec := s.Record
	result := &report.Result{Command: "rollback", Release: rec.ID, Namespace: s.Namespace, ChangeCause: rec.ChangeCause}
	s.Result = result
	rb, err := restoreAndVerify(ctx, s.Client, s.Store, rec, r.Watch)
	if len(rec.Skipped) == 0 {
		rb.ToRelease = lastGood(context.WithoutCancel(ctx), s.Store, rec)
	}
	r.notifyRollback(ctx, rec, rb, s.Client.Server, err)
	result.Rollback = rb
	result.FinishedAt = time.Now()
	if cause := stopCause(ctx); cause != nil {
		s.Done = true
		_, err := halt(ctx, s.Store, rec, result, stageRollback, cause)
		return err
	}
	if err != nil {
		return err
	}
	if len(rec.Skipped) > 0 {
		rb.Message += "; also undid the newer " + strings.Join(rec.Skipped, ", ")
	}
	if rb.Outcome == report.Succeeded {
		result.Outcome = report.Succeeded
		result.Message = "release " + rec.ID + " rolled back; " + rb.Message
	} else {
		result.Outcome = report.RollbackFailed
		result.Message = "rollback of " + rec.ID + " failed: " + rb.Message
	}
	return nil
}

// newerReleases lists, newest first, the app's releases after rec that are still in effect (not rolled
// back): rolling rec back would silently undo them too.
func newerReleases(ctx context.Context, store *release.Store, rec *release.Record) ([]string, error) {
	recs, err := store.List(ctx, rec.Namespace, rec.App)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		if r.Revision > rec.Revision && r.Outcome.InEffect() {
			out = append(out, r.ID)
		}
	}
	return out, nil
}
