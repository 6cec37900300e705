package guard

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rollguard/rollguard/internal/manifest"
)

// revision is one pod template a workload has run, as its controller keeps it: a Deployment's
// ReplicaSet, a StatefulSet's or DaemonSet's ControllerRevision. Hash is the same identity
// release.CurrentRevision gives (pod-template-hash, ControllerRevision name, controller-revision-hash), so
// the guard's records match the deploy's and history's.
type revision struct {
	Hash     string
	Number   int64
	Template corev1.PodTemplateSpec
	// ChangeCause is the kubernetes.io/change-cause the workload had when this revision was made.
	ChangeCause string
}

// revisions lists a workload's revisions from the cache, oldest first.
func revisions(ctx context.Context, r client.Reader, w client.Object) ([]revision, error) {
	var out []revision
	uid := w.GetUID()
	owned := []client.ListOption{client.InNamespace(w.GetNamespace()), client.MatchingFields{ownerIndex: string(uid)}, client.UnsafeDisableDeepCopy}
	switch w.(type) {
	case *appsv1.Deployment:
		var list appsv1.ReplicaSetList
		if err := r.List(ctx, &list, owned...); err != nil {
			return nil, fmt.Errorf("listing ReplicaSets of %s: %w", w.GetName(), err)
		}
		for _, rs := range list.Items {
			n, err := strconv.ParseInt(rs.Annotations["deployment.kubernetes.io/revision"], 10, 64)
			hash := rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
			if err != nil || hash == "" {
				continue
			}
			t := *rs.Spec.Template.DeepCopy()
			// The controller adds the hash label to the ReplicaSet's copy, not to the Deployment's template.
			delete(t.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
			out = append(out, revision{Hash: hash, Number: n, Template: t, ChangeCause: rs.Annotations[manifest.ChangeCauseAnnotation]})
		}
	case *appsv1.StatefulSet, *appsv1.DaemonSet:
		var list appsv1.ControllerRevisionList
		if err := r.List(ctx, &list, owned...); err != nil {
			return nil, fmt.Errorf("listing ControllerRevisions of %s: %w", w.GetName(), err)
		}
		_, isSTS := w.(*appsv1.StatefulSet)
		for _, cr := range list.Items {
			t, err := revisionTemplate(cr)
			if err != nil {
				continue
			}
			hash := cr.Labels[appsv1.ControllerRevisionHashLabelKey]
			if isSTS {
				hash = cr.Name
			}
			out = append(out, revision{Hash: hash, Number: cr.Revision, Template: t, ChangeCause: cr.Annotations[manifest.ChangeCauseAnnotation]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

// revisionTemplate reads the pod template a ControllerRevision stores: the StatefulSet and DaemonSet
// controllers keep {"spec":{"template":{...,"$patch":"replace"}}}.
func revisionTemplate(cr appsv1.ControllerRevision) (corev1.PodTemplateSpec, error) {
	var data struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	err := json.Unmarshal(cr.Data.Raw, &data)
	return data.Spec.Template, err
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

// images lists a template's images, init containers first, as records keep them.
func images(t corev1.PodTemplateSpec) []string {
	var out []string
	for _, c := range t.Spec.InitContainers {
		out = append(out, c.Image)
	}
	for _, c := range t.Spec.Containers {
		out = append(out, c.Image)
	}
	return out
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
