package diagnose

import (
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	deploymentutil "k8s.io/kubectl/pkg/util/deployment"
)

// Only the new revision matters: an old ReplicaSet's crash-looping pods are what the rollout replaces, not what
// it broke. This file decides which pods belong to the revision being rolled out.

// newReplicaSet finds the Deployment's ReplicaSet for its current pod template, as the deployment controller
// does: same template ignoring pod-template-hash, oldest first. Only when no template matches (objects captured
// mid-update) does it fall back to the revision annotation, and only once the controller has observed the
// Deployment's generation, since until then that annotation still names the previous revision.
func newReplicaSet(d *appsv1.Deployment, all []appsv1.ReplicaSet) *appsv1.ReplicaSet {
	var owned []*appsv1.ReplicaSet
	for i := range all {
		rs := &all[i]
		if ref := metav1.GetControllerOf(rs); ref != nil && d.UID != "" && ref.UID != d.UID {
			continue
		}
		owned = append(owned, rs)
	}
	slices.SortStableFunc(owned, func(a, b *appsv1.ReplicaSet) int {
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
	})
	for _, rs := range owned {
		if sameTemplate(&rs.Spec.Template, &d.Spec.Template) {
			return rs
		}
	}
	if d.Status.ObservedGeneration < d.Generation {
		return nil
	}
	want, ok := d.Annotations[deploymentutil.RevisionAnnotation]
	if !ok {
		return nil
	}
	for _, rs := range owned {
		if rs.Annotations[deploymentutil.RevisionAnnotation] == want {
			return rs
		}
	}
	return nil
}

func sameTemplate(a, b *corev1.PodTemplateSpec) bool {
	// Shallow copies with their own label maps: deep-copying both templates for every comparison was most of
	// what tracking 1,000 workloads allocated. Nothing here writes through the shared pointers.
	ac, bc := *a, *b
	ac.Labels, bc.Labels = withoutHash(a.Labels), withoutHash(b.Labels)
	return apiequality.Semantic.DeepEqual(&ac, &bc)
}

// withoutHash is labels without pod-template-hash, which the controller adds to a ReplicaSet's template.
func withoutHash(labels map[string]string) map[string]string {
	if _, ok := labels[appsv1.DefaultDeploymentUniqueLabelKey]; !ok {
		return labels
	}
	out := make(map[string]string, len(labels)-1)
	for k, v := range labels {
		if k != appsv1.DefaultDeploymentUniqueLabelKey {
			out[k] = v
		}
	}
	return out
}

// podsOfReplicaSet returns the ReplicaSet's pods: by controller reference when UIDs are known, else by the
// pod-template-hash label every pod of a Deployment carries.
func podsOfReplicaSet(rs *appsv1.ReplicaSet, pods []corev1.Pod) []corev1.Pod {
	hash := rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	return filterPods(pods, rs.UID, func(p *corev1.Pod) bool {
		return hash != "" && p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash
	})
}

// podsOfStatefulSetRevision returns the pods at the StatefulSet's update revision.
func podsOfStatefulSetRevision(sts *appsv1.StatefulSet, pods []corev1.Pod) []corev1.Pod {
	rev := sts.Status.UpdateRevision
	if rev == "" {
		return nil
	}
	return filterPods(pods, sts.UID, func(p *corev1.Pod) bool {
		return p.Labels[appsv1.ControllerRevisionHashLabelKey] == rev
	})
}

// podsOfDaemonSetRevision returns the pods of the DaemonSet's current template. The daemon controller labels each
// pod with the template generation it was made from (pod-template-generation), which the apiserver keeps in the
// deprecated.daemonset.template.generation annotation; objects without it fall back to metadata.generation.
func podsOfDaemonSetRevision(ds *appsv1.DaemonSet, pods []corev1.Pod) []corev1.Pod {
	gen := strconv.FormatInt(ds.Generation, 10)
	if a, ok := ds.Annotations[appsv1.DeprecatedTemplateGeneration]; ok {
		gen = a
	}
	return filterPods(pods, ds.UID, func(p *corev1.Pod) bool {
		return p.Labels[daemonSetTemplateGenerationLabel] == gen
	})
}

// daemonSetTemplateGenerationLabel is set by the daemon controller on every pod (extensions/v1beta1 names it).
const daemonSetTemplateGenerationLabel = "pod-template-generation"

// filterPods keeps the pods controlled by owner (when both sides carry UIDs) that also satisfy match.
func filterPods(pods []corev1.Pod, owner types.UID, match func(*corev1.Pod) bool) []corev1.Pod {
	var out []corev1.Pod
	for i := range pods {
		p := &pods[i]
		if ref := metav1.GetControllerOf(p); ref != nil && owner != "" && ref.UID != owner {
			continue
		}
		if match(p) {
			out = append(out, *p)
		}
	}
	return out
}
