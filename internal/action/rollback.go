package action

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/lock"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/track"
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

// Run rolls the release back and tracks the restored workloads.
func (r *Rollback) Run(ctx context.Context) (*report.Result, error) {
	if r.Timeout <= 0 {
		return nil, exitcode.BadInputf("--timeout must be positive, got %s", r.Timeout)
	}
	if r.Release != "" && r.Last {
		return nil, exitcode.BadInputf("pass either a RELEASE or --last --app NAME, not both")
	}
	if r.Release == "" && !r.Last {
		return nil, exitcode.BadInputf("name the release to roll back (e.g. rollguard rollback web.v7) or pass --last --app NAME")
	}
	// Without --app, "the newest release" would be any app's: never roll back one the user did not name.
	if r.Last && r.App == "" {
		return nil, exitcode.BadInputf("--last needs --app NAME: say whose newest release to roll back")
	}
	c, err := r.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ns := r.Namespace
	if ns == "" {
		ns = c.Namespace
	}
	store := release.NewStore(c)
	var rec *release.Record
	if r.Last {
		if rec, err = store.Latest(ctx, ns, r.App); err != nil {
			return nil, err
		}
		if rec == nil {
			return nil, exitcode.BadInputf("app %q has no release in namespace %q", r.App, ns)
		}
	} else if rec, err = store.Get(ctx, ns, r.Release); err != nil {
		return nil, err
	}
	switch rec.Outcome {
	case release.RolledBack:
		return nil, exitcode.BadInputf("release %s is already rolled back", rec.ID)
	case release.Applying, release.Tracking, release.RollingBack:
		// A killed run: the lock below makes sure it is really gone.
	}
	lk, err := lock.Acquire(ctx, c, ns, rec.App, lock.Options{Wait: r.WaitForLock, TTL: r.LockTTL})
	if err != nil {
		return nil, err
	}
	defer lk.Release(context.WithoutCancel(ctx))
	newer, err := newerReleases(ctx, store, rec)
	if err != nil {
		return nil, err
	}
	if len(newer) > 0 && !r.SkipNewer {
		return nil, exitcode.BadInputf("%s is not the current release of %s (%s is, deployed after it): roll back %s instead, or pass --skip-newer to also undo %s; nothing was changed",
			rec.ID, rec.App, newer[0], newer[0], strings.Join(newer, ", "))
	}
	rec.Skipped = newer
	crashpoint.Hit("rollback:locked")

	ctx, cancel := holdLock(ctx, lk, r.logger(), rec.App)
	defer cancel()

	result := &report.Result{Command: "rollback", Release: rec.ID, Namespace: ns, ChangeCause: rec.ChangeCause}
	rb, err := restoreAndVerify(ctx, c, store, rec, r.Watch)
	if len(rec.Skipped) == 0 {
		rb.ToRelease = lastGood(context.WithoutCancel(ctx), store, rec)
	}
	r.notifyRollback(ctx, rec, rb, c.Server, err)
	result.Rollback = rb
	result.FinishedAt = time.Now()
	if cause := stopCause(ctx); cause != nil {
		return halt(ctx, store, rec, result, stageRollback, cause)
	}
	if err != nil {
		return result, err
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
	return result, nil
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

// restoreAndVerify puts back every object the release changed, deletes what it created, then tracks the
// restored workloads with the same tracker as a deploy. The record says rolling_back before the first
// change, so a run killed mid-rollback is finished by the next one.
func restoreAndVerify(ctx context.Context, c *kube.Client, store *release.Store, rec *release.Record, w Watch) (*report.Rollback, error) {
	log := w.logger()
	started := time.Now()
	rb := &report.Rollback{Outcome: report.Failed, StartedAt: started}
	rec.Outcome = release.RollingBack
	rec.Timings.RollbackStartedAt = started.UTC()
	if err := kube.RetryTransient(ctx, restoreRetry, func() error { return store.Update(ctx, rec) }); err != nil {
		return rb, err
	}
	crashpoint.Hit("rollback:started")
	if err := restore(ctx, c, rec); err != nil {
		if cause := stopCause(ctx); cause != nil {
			return rb, cause // left rolling_back: the caller records where it stopped
		}
		rec.Outcome = release.RollbackFailed
		rec.Message = err.Error()
		rec.Timings.RollbackFinishedAt = time.Now().UTC()
		_ = store.Update(context.WithoutCancel(ctx), rec)
		rb.FinishedAt = time.Now()
		rb.Message = err.Error()
		return rb, exitcode.New(exitcode.NotRecovered, fmt.Errorf("rolling back %s: %w", rec.ID, err))
	}
	log.Info("restored previous state", "release", rec.ID)
	w.event("rolled back " + rec.ID + ": previous state restored; waiting for it to be healthy")
	crashpoint.Hit("rollback:restored")

	var targets []track.Target
	for _, o := range rec.Objects {
		if o.Existed && track.Trackable(o.Kind) {
			targets = append(targets, track.Target{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name})
		}
	}
	ws, err := w.trackAt(ctx, c, targets, started.Add(-2*time.Second), started, "rollback:first-update")
	rb.Workloads = ws
	rb.FinishedAt = time.Now()
	rec.Timings.RollbackFinishedAt = rb.FinishedAt.UTC()
	if cause := stopCause(ctx); err != nil && cause != nil {
		return rb, cause
	}
	if err != nil {
		rec.Outcome = release.RollbackFailed
		rec.Message = "rollback not verified: " + err.Error()
		_ = store.Update(context.WithoutCancel(ctx), rec)
		return rb, err
	}
	if outcomeOf(ws) == report.Succeeded {
		rb.Outcome = report.Succeeded
		rec.Outcome = release.RolledBack
	} else {
		rec.Outcome = release.RollbackFailed
	}
	rb.Message = summary(ws)
	crashpoint.Hit("rollback:verified")
	if err := store.Update(ctx, rec); err != nil {
		return rb, err
	}
	return rb, nil
}

// restoreRetry is how long a rollback waits for an API server that does not answer (a restart), per object.
const restoreRetry = time.Minute

// restore writes back each recorded object in reverse apply order: objects the release created are deleted,
// objects it changed are replaced by their previous state. Replacing (not patching) matters: a field the
// release added must disappear, and a Deployment whose template returns to a previous ReplicaSet's is
// rolled back by its controller exactly as `kubectl rollout undo` does it.
func restore(ctx context.Context, c *kube.Client, rec *release.Record) error {
	var errs []error
	for i := len(rec.Objects) - 1; i >= 0; i-- {
		o := rec.Objects[i]
		gvk := schema.FromAPIVersionAndKind(o.APIVersion, o.Kind)
		res, err := c.Resource(gvk, o.Namespace)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o.Ref(), err))
			continue
		}
		if !o.Existed && o.Kind == "Namespace" {
			continue // never deleted: it holds the release records (see createNamespaces)
		}
		if !o.Existed {
			policy := metav1.DeletePropagationBackground
			err := kube.RetryTransient(ctx, restoreRetry, func() error {
				return res.Delete(ctx, o.Name, metav1.DeleteOptions{PropagationPolicy: &policy})
			})
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, kube.Classify(err, "deleting "+o.Ref(), c.Server))
			}
			crashpoint.Hit("rollback:restored:" + o.Kind)
			continue
		}
		if o.Previous == nil {
			continue
		}
		prev := o.Previous.DeepCopy()
		err = kube.RetryTransient(ctx, restoreRetry, func() error {
			live, err := res.Get(ctx, o.Name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				_, err = res.Create(ctx, prev, metav1.CreateOptions{FieldManager: kube.FieldManager})
			case err == nil:
				err = replace(ctx, c, res, live, prev)
				if err != nil && kube.MustReplace(prev, err) {
					_, err = c.Recreate(ctx, prev)
				}
			}
			return err
		})
		if err != nil {
			errs = append(errs, kube.Classify(err, "restoring "+o.Ref(), c.Server))
		}
		crashpoint.Hit("rollback:restoring")
		crashpoint.Hit("rollback:restored:" + o.Kind)
	}
	return errors.Join(errs...)
}

// replace puts prev in place of live, retrying on conflicts with the controllers that update the object.
func replace(ctx context.Context, c *kube.Client, res interface {
	Get(context.Context, string, metav1.GetOptions, ...string) (*unstructured.Unstructured, error)
	Update(context.Context, *unstructured.Unstructured, metav1.UpdateOptions, ...string) (*unstructured.Unstructured, error)
}, live, prev *unstructured.Unstructured) error {
	for attempt := 0; ; attempt++ {
		next := prev.DeepCopy()
		next.SetResourceVersion(live.GetResourceVersion())
		// The revision annotation belongs to the Deployment controller: carrying the live one keeps its
		// numbering monotonic, as after `kubectl rollout undo`.
		if rev, ok := live.GetAnnotations()["deployment.kubernetes.io/revision"]; ok {
			a := next.GetAnnotations()
			if a == nil {
				a = map[string]string{}
			}
			a["deployment.kubernetes.io/revision"] = rev
			next.SetAnnotations(a)
		}
		_, err := res.Update(ctx, next, metav1.UpdateOptions{FieldManager: kube.FieldManager})
		if !apierrors.IsConflict(err) || attempt >= 5 {
			return err
		}
		if live, err = res.Get(ctx, live.GetName(), metav1.GetOptions{}); err != nil {
			return err
		}
	}
}
