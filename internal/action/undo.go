package action

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/polymorphichelpers"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/history"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/lock"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/revision"
	"github.com/rollguard/rollguard/internal/track"
)

// Undo rolls a workload back to an earlier revision — with kubectl's own rollbacker, so the result is what
// `kubectl rollout undo` produces — then tracks it like a deploy and records it in the history.
type Undo struct {
	Connect Connector
	Watch
	Object    string
	Namespace string
	// ToRevision is the revision to return to; 0 means the one before the current.
	ToRevision int64
	// ToImage "previous" picks the newest earlier revision whose images differ from the current ones.
	ToImage     string
	App         string
	WaitForLock time.Duration
	LockTTL     time.Duration
	Getenv      func(string) string
}

// Phases is the undo, step by step: options are checked before connecting, the revision is chosen and
// dry-run under the app's lock, and the change is recorded before it is made (changePhases).
func (u *Undo) Phases() []Phase {
	return append([]Phase{
		{Name: "check", Run: u.check},
		{Name: "connect", Run: u.connect},
		lockPhase(u.Watch, lock.Options{Wait: u.WaitForLock, TTL: u.LockTTL}, "", false),
		{Name: "target", Run: u.target},
	}, changePhases(u.Watch)...)
}

// Run performs the undo.
func (u *Undo) Run(ctx context.Context) (*report.Result, error) {
	return runPhases(ctx, &State{log: u.logger()}, u.Phases())
}

// check validates the options before any network call.
func (u *Undo) check(context.Context, *State) error {
	if u.Timeout <= 0 {
		return exitcode.BadInputf("--timeout must be positive, got %s", u.Timeout)
	}
	if u.ToImage != "" && u.ToImage != "previous" {
		return exitcode.BadInputf("--to-image takes only \"previous\" (the image deployed before the current one), got %q", u.ToImage)
	}
	if u.ToImage != "" && u.ToRevision != 0 {
		return exitcode.BadInputf("pass --to-revision or --to-image, not both")
	}
	if u.ToRevision < 0 {
		return exitcode.BadInputf("--to-revision must be a revision number, got %d", u.ToRevision)
	}
	return nil
}

// connect opens the cluster and reads the workload. Fills Client, Store, Namespace, App and workload.
func (u *Undo) connect(ctx context.Context, s *State) error {
	c, err := u.Connect(ctx)
	if err != nil {
		return err
	}
	w, err := resolveWorkload(ctx, c, u.Object, u.Namespace)
	if err != nil {
		return err
	}
	if u.ToImage != "" && w.target.Kind != "Deployment" {
		return exitcode.BadInputf("--to-image previous works on Deployments; pass --to-revision for a %s", w.target.Kind)
	}
	s.Client, s.Store, s.workload, s.getenv = c, release.NewStore(c), w, u.Getenv
	s.Namespace, s.App = w.target.Namespace, u.App
	if s.App == "" {
		s.App = w.target.Name
	}
	return nil
}

// target chooses the revision to return to and dry-runs the rollback to it, so a refused undo is bad input
// that leaves no record behind; an undo to where the workload already is ends the run here. Fills Cause and
// change.
func (u *Undo) target(ctx context.Context, s *State) error {
	c, w, rev := s.Client, s.workload, u.ToRevision
	var err error
	if u.ToImage == "previous" {
		if rev, err = previousImageRevision(ctx, c, w); err != nil {
			return err
		}
	}
	if rev == 0 && w.target.Kind == "Deployment" {
		if err := refuseFailedPrevious(ctx, c, s.Store, w, s.App); err != nil {
			return err
		}
	}
	rollbacker, err := polymorphichelpers.RollbackerFor(w.gvk.GroupKind(), c.Typed)
	if err != nil {
		return exitcode.BadInputf("cannot undo a %s: %v", w.target.Kind, err)
	}
	if w.target.Kind == "Deployment" && rev > 0 {
		if rev, err = renumberedRevision(ctx, c, w, rev); err != nil {
			return err
		}
	}
	msg, err := rollbacker.Rollback(w.live, nil, rev, cmdutil.DryRunServer)
	if err != nil {
		return exitcode.BadInputf("undoing %s: %v; nothing was changed (rollguard history %s -n %s lists its revisions)", u.Object, err, u.Object, w.target.Namespace)
	}
	if strings.HasPrefix(msg, "skipped rollback") {
		// Already there: nothing changes, so nothing is recorded.
		s.Done = true
		s.Result = &report.Result{Command: "undo", Namespace: w.target.Namespace, Outcome: report.Succeeded, FinishedAt: time.Now(),
			Message: "nothing to undo: " + strings.TrimSuffix(strings.TrimPrefix(msg, "skipped rollback "), "\n")}
		return nil
	}
	s.Cause = undoCause(rev)
	s.change = &workloadChange{Command: "undo", Undo: true, Point: "undo:recorded",
		Apply: func(ctx context.Context) error {
			msg, err := rollbacker.Rollback(w.live, nil, rev, cmdutil.DryRunNone)
			if err != nil {
				return exitcode.New(exitcode.NotRecovered, fmt.Errorf("undoing %s: %w", u.Object, err))
			}
			u.logger().Info("rolled back", "workload", w.target.String(), "result", msg)
			return nil
		}}
	return nil
}

// madeRevision reports whether rec rolled out the workload's revision rev/hash.
func madeRevision(rec *release.Record, t track.Target, rev int64, hash string) bool {
	for _, w := range rec.Workloads {
		if w.Kind == t.Kind && w.Name == t.Name && (w.Namespace == "" || w.Namespace == t.Namespace) {
			return hash != "" && w.NewTemplateHash == hash || hash == "" && rev > 0 && w.NewRevision == rev
		}
	}
	return false
}

// madeBy is the newest release (not an undo) among records, newest first, that rolled out the template
// w now runs: where the undo went back to.
func madeBy(records []*release.Record, w release.WorkloadState) string {
	t := track.Target{Kind: w.Kind, Namespace: w.Namespace, Name: w.Name}
	for _, r := range records {
		if !r.Undo && r.RollbackOf == "" && w.NewTemplateHash != "" && madeRevision(r, t, 0, w.NewTemplateHash) {
			return r.ID
		}
	}
	return ""
}

// refuseFailedPrevious refuses a plain undo whose target — the revision before the current one, as for
// `kubectl rollout undo` — is a release that failed: after an automatic rollback that is the failed
// release itself, which the user almost never means to redeploy.
func refuseFailedPrevious(ctx context.Context, c *kube.Client, store *release.Store, w *workload, app string) error {
	revs, err := revision.Read(ctx, c, w.target.Kind, w.target.Namespace, w.target.Name)
	if err != nil || revs == nil {
		return err
	}
	prev, ok := revs.Before(nil)
	if !ok || prev.Hash == "" {
		return nil
	}
	records, err := store.List(ctx, w.target.Namespace, app)
	if err != nil {
		return err
	}
	for _, r := range records {
		if r.Outcome == release.Succeeded || r.Undo || !madeRevision(r, w.target, 0, prev.Hash) {
			continue
		}
		return exitcode.BadInputf("the revision before the current one (%d) is %s (%s): a plain undo would deploy it again, as kubectl rollout undo would. Pass --to-revision N (rollguard history %s/%s -n %s lists the revisions) or --to-image previous; nothing was changed",
			prev.Number, r.ID, report.HistoryOutcome(history.Entry{Outcome: r.Outcome, Reason: r.Reason}), strings.ToLower(w.target.Kind), w.target.Name, w.target.Namespace)
	}
	return nil
}

// renumberedRevision maps a revision number history lists to the number the Deployment knows it by now:
// a rollback to a revision gives its ReplicaSet a new number and keeps the old ones in
// deployment.kubernetes.io/revision-history, which kubectl's rollbacker does not read.
func renumberedRevision(ctx context.Context, c *kube.Client, w *workload, rev int64) (int64, error) {
	revs, err := revision.Read(ctx, c, w.target.Kind, w.target.Namespace, w.target.Name)
	if err != nil || revs == nil {
		return rev, err
	}
	r, ok := revs.WasNumbered(rev)
	switch {
	case !ok || r.Number == rev:
		return rev, nil
	case r.Number == revs.Current:
		return 0, exitcode.BadInputf("revision %d of Deployment %s is the current one (now numbered %d): nothing to undo", rev, w.target.Name, r.Number)
	}
	return r.Number, nil
}

func undoCause(rev int64) string {
	if rev == 0 {
		return "rollguard undo to the previous revision"
	}
	return "rollguard undo to revision " + strconv.FormatInt(rev, 10)
}

// previousImageRevision is the newest revision before the current one whose container images differ from
// the current ones: "the image deployed before this one", skipping revisions that changed only config.
func previousImageRevision(ctx context.Context, c *kube.Client, w *workload) (int64, error) {
	revs, err := revision.Read(ctx, c, w.target.Kind, w.target.Namespace, w.target.Name)
	if err != nil {
		return 0, err
	}
	if revs == nil {
		return 0, exitcode.BadInputf("Deployment %s not found", w.target.Name)
	}
	current := revision.Images(revs.Template.Spec)
	if r, ok := revs.Before(func(r revision.Revision) bool { return !slices.Equal(r.Images(), current) }); ok {
		return r.Number, nil
	}
	numbered := 0
	for _, r := range revs.Revisions {
		if r.Number > 0 {
			numbered++
		}
	}
	return 0, exitcode.BadInputf("Deployment %s has no earlier revision with other images (%d revisions kept; see revisionHistoryLimit)", w.target.Name, numbered)
}
