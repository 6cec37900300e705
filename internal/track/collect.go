package track

import (
	"iter"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rollguard/rollguard/internal/diagnose"
)

// Collect picks, from a namespace's ReplicaSets, Pods and Events, what belongs to workload and returns the
// diagnosis input for it (Now, Started, Deadline and Logs are the caller's). The lists may hold anything
// else of the namespace: ownership, not label selectors, decides what belongs to the workload, because
// selectors of different workloads may overlap and owner references never do. Both the tracker and the
// guard gather their input here, so they judge the same objects.
func Collect(workload runtime.Object, replicaSets iter.Seq[*appsv1.ReplicaSet], pods iter.Seq[*corev1.Pod], events iter.Seq[*corev1.Event]) diagnose.Input {
	var in diagnose.Input
	m, ok := workload.(metav1.Object)
	if workload == nil || !ok {
		return in
	}
	in.Workload = workload
	uid := m.GetUID()
	owners := map[types.UID]bool{uid: true}
	involved := map[types.UID]bool{uid: true}
	if _, isDeployment := workload.(*appsv1.Deployment); isDeployment {
		for rs := range replicaSets {
			if ref := metav1.GetControllerOfNoCopy(rs); ref != nil && ref.UID == uid {
				in.ReplicaSets = append(in.ReplicaSets, *rs)
				owners[rs.UID] = true
				involved[rs.UID] = true
			}
		}
	}
	for p := range pods {
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil && owners[ref.UID] {
			in.Pods = append(in.Pods, *p)
			involved[p.UID] = true
		}
	}
	for e := range events {
		if involved[e.InvolvedObject.UID] {
			in.Events = append(in.Events, *e)
		}
	}
	sort.Slice(in.ReplicaSets, func(i, j int) bool { return in.ReplicaSets[i].Name < in.ReplicaSets[j].Name })
	sort.Slice(in.Pods, func(i, j int) bool { return in.Pods[i].Name < in.Pods[j].Name })
	sort.Slice(in.Events, func(i, j int) bool { return eventTime(in.Events[i]).Before(eventTime(in.Events[j])) })
	return in
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}
