package track

import (
	"iter"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// Index names. A release of 1,000 workloads has thousands of ReplicaSets, Pods and Events in its
// namespace; judging each workload by scanning all of them after every change would cost seconds a pass.
// The caches index them by owner (ReplicaSets, Pods) and by the object an Event is about, so gathering one
// workload's input reads only what belongs to it.
const (
	byController = "rollguard.dev/controller"
	byInvolved   = "rollguard.dev/involved"
)

func controllerUID(obj any) ([]string, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, nil
	}
	if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
		return []string{string(ref.UID)}, nil
	}
	return nil, nil
}

func involvedUID(obj any) ([]string, error) {
	if e, ok := obj.(*corev1.Event); ok && e.InvolvedObject.UID != "" {
		return []string{string(e.InvolvedObject.UID)}, nil
	}
	return nil, nil
}

// addIndexers indexes a namespace's caches; it must run before they start.
func (nc *nsCache) addIndexers() error {
	for _, inf := range []cache.SharedIndexInformer{nc.replicaSets, nc.pods} {
		if err := inf.AddIndexers(cache.Indexers{byController: controllerUID}); err != nil {
			return err
		}
	}
	return nc.events.AddIndexers(cache.Indexers{byInvolved: involvedUID})
}

// owned gathers, through the indexes, the ReplicaSets, Pods and Events that may belong to workload: a
// superset of what Collect keeps, which still decides by ownership.
func (nc *nsCache) owned(workload runtime.Object) (rss []*appsv1.ReplicaSet, pods []*corev1.Pod, events []*corev1.Event) {
	m, ok := workload.(metav1.Object)
	if !ok || workload == nil {
		return nil, nil, nil
	}
	owners := []types.UID{m.GetUID()}
	if _, isDeployment := workload.(*appsv1.Deployment); isDeployment {
		rss = indexed[*appsv1.ReplicaSet](nc.replicaSets, byController, m.GetUID())
		for _, rs := range rss {
			owners = append(owners, rs.UID)
		}
	}
	involved := append([]types.UID(nil), owners...)
	for _, uid := range owners {
		for _, p := range indexed[*corev1.Pod](nc.pods, byController, uid) {
			pods = append(pods, p)
			involved = append(involved, p.UID)
		}
	}
	for _, uid := range involved {
		events = append(events, indexed[*corev1.Event](nc.events, byInvolved, uid)...)
	}
	return rss, pods, events
}

func indexed[T runtime.Object](inf cache.SharedIndexInformer, index string, uid types.UID) []T {
	objs, err := inf.GetIndexer().ByIndex(index, string(uid))
	if err != nil {
		return nil
	}
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// all yields the items of a slice, for Collect.
func all[T any](items []T) iter.Seq[T] {
	return func(yield func(T) bool) {
		for _, t := range items {
			if !yield(t) {
				return
			}
		}
	}
}

// behind reports whether the cached workload is older than the generation a write gave it: the watch has
// not delivered the change yet, and judging the cached object would judge the previous revision.
func behind(workload runtime.Object, generation int64) bool {
	if generation <= 0 {
		return false
	}
	m, ok := workload.(metav1.Object)
	return workload == nil || !ok || m.GetGeneration() < generation
}
