package action

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/track"
)

// restoreAndVerify puts back every object the release changed, deletes what it created, then tracks the
// restored workloads with the same tracker as a deploy: restorePhases on a state of their own. The record
// says rolling_back before the first change, so a run killed mid-rollback is finished by the next one.
func restoreAndVerify(ctx context.Context, c *kube.Client, store *release.Store, rec *release.Record, w Watch) (*report.Rollback, error) {
	s := &State{Client: c, Store: store, Record: rec}
	_, err := runPhases(ctx, s, restorePhases(w))
	return s.Rollback, err
}

// restorePhases restore Record's previous state (restore), follow the restored workloads (track) and
// record whether they are healthy (verify). They read Client, Store and Record and fill Rollback; a run
// stopped on the way returns the cause, the record left rolling_back for the caller to halt.
func restorePhases(w Watch) []Phase {
	return []Phase{
		{Name: "restore", Run: func(ctx context.Context, s *State) error { return restorePrevious(ctx, s, w) }},
		trackRestored(w),
		{Name: "verify", Run: verifyRestored},
	}
}

// restorePrevious marks the record rolling_back and restores the objects, tracking the restored workloads as
// they go. Fills Rollback, Started, Since and Targets.
func restorePrevious(ctx context.Context, s *State, w Watch) error {
	rec, store := s.Record, s.Store
	s.Started = time.Now()
	s.Rollback = &report.Rollback{Outcome: report.Failed, StartedAt: s.Started}
	rec.Outcome = release.RollingBack
	rec.Timings.RollbackStartedAt = s.Started.UTC()
	if err := kube.RetryTransient(ctx, restoreRetry, func() error { return store.Update(ctx, rec) }); err != nil {
		return err
	}
	crashpoint.Hit("rollback:started")
	s.Targets, s.Since = nil, s.Started
	for _, o := range rec.Objects {
		if o.Existed && track.Trackable(schema.FromAPIVersionAndKind(o.APIVersion, o.Kind).GroupKind()) {
			s.Targets = append(s.Targets, track.Target{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name})
		}
	}
	// Each restored workload is followed from the moment it is restored, while the others still are; the
	// track phase collects the verdicts.
	live := startTracking(ctx, w, s.Client, s.Targets, s.Started.Add(-2*time.Second), s.Since, "rollback:first-update")
	err := restore(ctx, s.Client, rec, func(o release.ObjectState, written *unstructured.Unstructured) {
		live.mark(track.Target{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name}, written)
	})
	if err != nil {
		live.stop()
		if cause := stopCause(ctx); cause != nil {
			return cause // left rolling_back: the caller records where it stopped
		}
		rec.Outcome = release.RollbackFailed
		rec.Message = err.Error()
		rec.Timings.RollbackFinishedAt = time.Now().UTC()
		_ = store.Update(context.WithoutCancel(ctx), rec)
		s.Rollback.FinishedAt = time.Now()
		s.Rollback.Message = err.Error()
		return exitcode.New(exitcode.NotRecovered, fmt.Errorf("rolling back %s: %w", rec.ID, err))
	}
	w.logger().Info("restored previous state", "release", rec.ID)
	w.event("rolled back " + rec.ID + ": previous state restored; waiting for it to be healthy")
	crashpoint.Hit("rollback:restored")
	s.tracking = live
	return nil
}

// trackRestored is the shared track phase over the restored workloads; a rollback it cannot verify is
// recorded as failed.
func trackRestored(w Watch) Phase {
	tracked := trackPhase(w, "rollback:first-update")
	return Phase{Name: tracked.Name, Run: func(ctx context.Context, s *State) error {
		err := tracked.Run(ctx, s)
		rb, rec := s.Rollback, s.Record
		rb.Workloads, rb.FinishedAt = s.Workloads, time.Now()
		rec.Timings.RollbackFinishedAt = rb.FinishedAt.UTC()
		if cause := stopCause(ctx); err != nil && cause != nil {
			return cause
		}
		if err != nil {
			rec.Outcome = release.RollbackFailed
			rec.Message = "rollback not verified: " + err.Error()
			_ = s.Store.Update(context.WithoutCancel(ctx), rec)
		}
		return err
	}}
}

// verifyRestored records whether the restored workloads are healthy.
func verifyRestored(ctx context.Context, s *State) error {
	rb, rec := s.Rollback, s.Record
	if outcomeOf(s.Workloads) == report.Succeeded {
		rb.Outcome = report.Succeeded
		rec.Outcome = release.RolledBack
	} else {
		rec.Outcome = release.RollbackFailed
	}
	rb.Message = summary(s.Workloads)
	crashpoint.Hit("rollback:verified")
	return s.Store.Update(ctx, rec)
}

// restoreRetry is how long a rollback waits for an API server that does not answer (a restart), per object.
const restoreRetry = time.Minute

// restore writes back each recorded object in reverse apply order: objects the release created are deleted,
// objects it changed are replaced by their previous state. Replacing (not patching) matters: a field the
// release added must disappear, and a Deployment whose template returns to a previous ReplicaSet's is
// rolled back by its controller exactly as `kubectl rollout undo` does it. The objects of one group
// (manifest.Rank) are restored at once within the client's bound, a group after the one that depends on
// it; every object is attempted and every failure reported. restored is called as each one is back, with
// what the server returned (nil for a deletion).
func restore(ctx context.Context, c *kube.Client, rec *release.Record, restored func(o release.ObjectState, written *unstructured.Unstructured)) error {
	var errs []error
	var first atomic.Bool
	for _, group := range restoreGroups(rec.Objects) {
		failed := make([]error, len(group))
		err := c.ForEach(ctx, len(group), func(ctx context.Context, i int) error {
			var written *unstructured.Unstructured
			written, failed[i] = restoreObject(ctx, c, group[i])
			if failed[i] == nil {
				restored(group[i], written)
			}
			if first.CompareAndSwap(false, true) {
				crashpoint.Hit("rollback:restoring")
			}
			crashpoint.Hit("rollback:restored:" + group[i].Kind)
			return nil
		})
		if err != nil {
			return err
		}
		errs = append(errs, failed...)
	}
	return errors.Join(errs...)
}

// restoreGroups orders a record's objects for restoring, the reverse of apply order, and splits them into
// groups of one rank. Objects an earlier, killed run touched come last in a record; ranking puts them in
// their place.
func restoreGroups(objs []release.ObjectState) [][]release.ObjectState {
	rank := func(o release.ObjectState) int {
		return manifest.Rank(schema.FromAPIVersionAndKind(o.APIVersion, o.Kind).GroupKind())
	}
	ordered := slices.Clone(objs)
	slices.Reverse(ordered)
	slices.SortStableFunc(ordered, func(a, b release.ObjectState) int { return rank(b) - rank(a) })
	var out [][]release.ObjectState
	for i, o := range ordered {
		if i == 0 || rank(o) != rank(ordered[i-1]) {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], o)
	}
	return out
}

// restoreObject puts one object back as it was before the release: deleted when the release created it,
// else replaced by its recorded state (re-created when it was deleted since). It returns what the server
// holds now (nil when deleted or left alone).
func restoreObject(ctx context.Context, c *kube.Client, o release.ObjectState) (*unstructured.Unstructured, error) {
	gvk := schema.FromAPIVersionAndKind(o.APIVersion, o.Kind)
	res, err := c.Resource(gvk, o.Namespace)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Ref(), err)
	}
	if !o.Existed && o.Kind == "Namespace" {
		return nil, nil // never deleted: it holds the release records (see createNamespaces)
	}
	if !o.Existed {
		policy := metav1.DeletePropagationBackground
		err := kube.RetryTransient(ctx, restoreRetry, func() error {
			return res.Delete(ctx, o.Name, metav1.DeleteOptions{PropagationPolicy: &policy})
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, kube.Classify(err, "deleting "+o.Ref(), c.Server)
		}
		return nil, nil
	}
	if o.Previous == nil {
		return nil, nil
	}
	prev := o.Previous.DeepCopy()
	var written *unstructured.Unstructured
	err = kube.RetryTransient(ctx, restoreRetry, func() error {
		live, err := res.Get(ctx, o.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			written, err = res.Create(ctx, prev, metav1.CreateOptions{FieldManager: kube.FieldManager})
		case err == nil:
			written, err = replace(ctx, res, live, prev)
			if err != nil && kube.MustReplace(prev, err) {
				written, err = c.Recreate(ctx, prev)
			}
		}
		return err
	})
	if err != nil {
		return nil, kube.Classify(err, "restoring "+o.Ref(), c.Server)
	}
	return written, nil
}

// replace puts prev in place of live, retrying on conflicts with the controllers that update the object,
// and returns the object written.
func replace(ctx context.Context, res interface {
	Get(context.Context, string, metav1.GetOptions, ...string) (*unstructured.Unstructured, error)
	Update(context.Context, *unstructured.Unstructured, metav1.UpdateOptions, ...string) (*unstructured.Unstructured, error)
}, live, prev *unstructured.Unstructured) (*unstructured.Unstructured, error) {
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
		written, err := res.Update(ctx, next, metav1.UpdateOptions{FieldManager: kube.FieldManager})
		if !apierrors.IsConflict(err) || attempt >= 5 {
			return written, err
		}
		if live, err = res.Get(ctx, live.GetName(), metav1.GetOptions{}); err != nil {
			return nil, err
		}
	}
}
