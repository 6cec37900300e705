package guard

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadrev "github.com/rollguard/rollguard/internal/revision"
)

// revision is one pod template a workload has run, as internal/revision reads it from its controller's
// objects. Hash is the same identity revision.Current gives (pod-template-hash, ControllerRevision name,
// controller-revision-hash), so the guard's records match the deploy's and history's.
type revision = workloadrev.Revision

// revisions lists a workload's revisions from the cache, oldest first: the ones its controller numbered,
// with a template.
func revisions(ctx context.Context, r client.Reader, w client.Object) ([]revision, error) {
	uid := w.GetUID()
	owned := []client.ListOption{client.InNamespace(w.GetNamespace()), client.MatchingFields{ownerIndex: string(uid)}, client.UnsafeDisableDeepCopy}
	var all []revision
	switch w.(type) {
	case *appsv1.Deployment:
		var list appsv1.ReplicaSetList
		if err := r.List(ctx, &list, owned...); err != nil {
			return nil, fmt.Errorf("listing ReplicaSets of %s: %w", w.GetName(), err)
		}
		all = workloadrev.OfReplicaSets(uid, list.Items)
	case *appsv1.StatefulSet, *appsv1.DaemonSet:
		var list appsv1.ControllerRevisionList
		if err := r.List(ctx, &list, owned...); err != nil {
			return nil, fmt.Errorf("listing ControllerRevisions of %s: %w", w.GetName(), err)
		}
		all = workloadrev.OfControllerRevisions(kindOf(w), uid, list.Items)
	}
	out := all[:0]
	for _, rv := range all {
		if rv.Number > 0 && rv.Hash != "" && len(rv.Template.Spec.Containers) > 0 {
			out = append(out, rv)
		}
	}
	return out, nil
}

// currentHash is the identity of the template the workload's controller is rolling out now, or "" while
// the controller has not caught up with the latest spec (it will update the status, which brings the
// workload back to the guard).
func currentHash(w client.Object, revs []revision) string {
	switch o := w.(type) {
	case *appsv1.Deployment:
		if o.Status.ObservedGeneration < o.Generation {
			return ""
		}
		n, _ := strconv.ParseInt(o.Annotations["deployment.kubernetes.io/revision"], 10, 64)
		for _, r := range revs {
			if r.Number == n {
				return r.Hash
			}
		}
	case *appsv1.StatefulSet:
		if o.Status.ObservedGeneration < o.Generation {
			return ""
		}
		return o.Status.UpdateRevision
	case *appsv1.DaemonSet:
		if o.Status.ObservedGeneration < o.Generation || len(revs) == 0 {
			return ""
		}
		return revs[len(revs)-1].Hash
	}
	return ""
}

// restoreTarget picks the revision to return to when the rollout of current fails: the baseline (the
// last template the guard saw healthy) while the controller still keeps it, else the newest other one —
// what `rollguard undo` picks by default.
func restoreTarget(revs []revision, current, baseline string) (revision, bool) {
	for _, r := range revs {
		if baseline != "" && r.Hash == baseline && r.Hash != current {
			return r, true
		}
	}
	for i := len(revs) - 1; i >= 0; i-- {
		if revs[i].Hash != current {
			return revs[i], true
		}
	}
	return revision{}, false
}

// podTemplate returns a workload's pod template.
func podTemplate(w client.Object) *corev1.PodTemplateSpec {
	switch o := w.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template
	case *appsv1.StatefulSet:
		return &o.Spec.Template
	case *appsv1.DaemonSet:
		return &o.Spec.Template
	}
	return nil
}

// kindOf names a workload's kind (typed objects from the cache carry no TypeMeta).
func kindOf(w client.Object) string {
	switch w.(type) {
	case *appsv1.Deployment:
		return "Deployment"
	case *appsv1.StatefulSet:
		return "StatefulSet"
	case *appsv1.DaemonSet:
		return "DaemonSet"
	}
	return ""
}

// controllerUID indexes owned objects by their controller's UID.
func controllerUID(o client.Object) []string {
	if ref := metav1.GetControllerOfNoCopy(o); ref != nil {
		return []string{string(ref.UID)}
	}
	return nil
}
