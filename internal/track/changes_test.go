package track

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

func controlled(kind, name string) []metav1.OwnerReference {
	yes := true
	return []metav1.OwnerReference{{Kind: kind, Name: name, UID: "uid-" + types.UID(name), Controller: &yes}}
}

func store(t *testing.T, example runtime.Object, objs ...any) cache.SharedIndexInformer {
	t.Helper()
	inf := cache.NewSharedIndexInformer(&cache.ListWatch{}, example, 0, cache.Indexers{})
	for _, o := range objs {
		if err := inf.GetStore().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	return inf
}

// TestChangeOwner: a changed object is traced to the workload it belongs to (a Pod through its ReplicaSet,
// an Event through the object it is about); what belongs to no target, or whose owner the caches do not
// hold yet, marks nothing.
func TestChangeOwner(t *testing.T) {
	ns := "ns"
	meta := func(name string, owners []metav1.OwnerReference) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: owners}
	}
	web := &appsv1.ReplicaSet{ObjectMeta: meta("web-1", controlled("Deployment", "web"))}
	other := &appsv1.ReplicaSet{ObjectMeta: meta("other-1", controlled("Deployment", "other"))}
	webPod := &corev1.Pod{ObjectMeta: meta("web-1-a", controlled("ReplicaSet", "web-1"))}
	dbPod := &corev1.Pod{ObjectMeta: meta("db-0", controlled("StatefulSet", "db"))}
	orphan := &corev1.Pod{ObjectMeta: meta("web-2-a", controlled("ReplicaSet", "web-2"))} // its ReplicaSet not seen yet
	nc := &nsCache{
		replicaSets: store(t, &appsv1.ReplicaSet{}, web, other),
		pods:        store(t, &corev1.Pod{}, webPod, dbPod),
	}
	ch := newChanges([]Target{{Kind: "Deployment", Namespace: ns, Name: "web"}, {Kind: "StatefulSet", Namespace: ns, Name: "db"}})
	event := func(kind, name string) *corev1.Event {
		return &corev1.Event{ObjectMeta: meta("e"+name, nil), InvolvedObject: corev1.ObjectReference{Kind: kind, Namespace: ns, Name: name}}
	}
	for _, c := range []struct {
		what   string
		obj    any
		target int // -1: none
	}{
		{"the Deployment itself", &appsv1.Deployment{ObjectMeta: meta("web", nil)}, 0},
		{"its ReplicaSet", web, 0},
		{"a pod of its ReplicaSet", webPod, 0},
		{"a StatefulSet's pod", dbPod, 1},
		{"an event about the pod", event("Pod", "web-1-a"), 0},
		{"an event about the ReplicaSet", event("ReplicaSet", "web-1"), 0},
		{"an event about the Deployment", event("Deployment", "web"), 0},
		{"an event about the StatefulSet", event("StatefulSet", "db"), 1},
		{"another app's ReplicaSet", other, -1},
		{"a pod whose ReplicaSet is not cached yet", orphan, -1},
		{"an event about a pod not cached", event("Pod", "gone"), -1},
		{"a pod without owner", &corev1.Pod{ObjectMeta: meta("bare", nil)}, -1},
		{"a Deployment of the same name elsewhere", &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "web"}}, -1},
	} {
		i, ok := ch.owner(nc, c.obj)
		if got := map[bool]int{true: i, false: -1}[ok]; got != c.target {
			t.Errorf("%s: traced to target %d, want %d", c.what, got, c.target)
		}
	}
	// A deletion the watch missed comes as a tombstone; it still marks its workload, and wakes the loop.
	ch.handler(nc).OnDelete(cache.DeletedFinalStateUnknown{Key: ns + "/db-0", Obj: dbPod})
	if dirty := ch.take(); !dirty[1] || len(dirty) != 1 {
		t.Errorf("after a tombstone of the StatefulSet's pod: changed %v, want only target 1", dirty)
	}
	select {
	case <-ch.signal:
	default:
		t.Error("a change did not wake the tracking loop")
	}
}

// TestRecheckEvery: unchanged workloads are judged again every tick, and no more often than about a
// millisecond per workload in a large release.
func TestRecheckEvery(t *testing.T) {
	for _, c := range []struct {
		targets int
		want    time.Duration
	}{{1, 250 * time.Millisecond}, {200, 250 * time.Millisecond}, {1000, time.Second}} {
		if got := recheckEvery(250*time.Millisecond, c.targets); got != c.want {
			t.Errorf("recheckEvery(250ms, %d) = %v, want %v", c.targets, got, c.want)
		}
	}
}
