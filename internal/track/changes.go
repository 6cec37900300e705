package track

import (
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// changes says which targets the watches saw change since the last pass, so a pass judges only those: a
// release of 1,000 workloads gets thousands of watch events while its pods start, and judging every
// workload after each of them took a third of a core (on machines where the API server needs it) to learn
// that one workload moved. A changed object is traced to the workload that owns it: a ReplicaSet to its
// Deployment, a Pod to its ReplicaSet's Deployment (or its StatefulSet, DaemonSet, Job), an Event to the
// object it is about.
type changes struct {
	targets map[targetKey]int // index in Track's targets
	signal  chan struct{}     // has a value when something changed since the last take

	mu    sync.Mutex
	dirty map[int]bool
}

func newChanges(targets []Target) *changes {
	ch := &changes{targets: make(map[targetKey]int, len(targets)), signal: make(chan struct{}, 1), dirty: map[int]bool{}}
	for i, t := range targets {
		ch.targets[targetKey{t.Kind, t.Namespace, t.Name}] = i
	}
	return ch
}

// targetKey names a target without building a string: every watch event looks one up.
type targetKey struct{ kind, namespace, name string }

// mark records that target i changed.
func (ch *changes) mark(i int) {
	ch.mu.Lock()
	ch.dirty[i] = true
	ch.mu.Unlock()
	ch.wake()
}

// wake starts a pass (a custom resource changed: those are judged on every pass).
func (ch *changes) wake() {
	select {
	case ch.signal <- struct{}{}:
	default:
	}
}

// take returns the targets that changed since the last take and starts afresh.
func (ch *changes) take() map[int]bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	dirty := ch.dirty
	ch.dirty = map[int]bool{}
	return dirty
}

// handler marks the target an object of namespace cache nc belongs to, if any; objects of no target
// (another app's pods in the namespace) change nothing.
func (ch *changes) handler(nc *nsCache) cache.ResourceEventHandler {
	seen := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if i, ok := ch.owner(nc, obj); ok {
			ch.mark(i)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    seen,
		UpdateFunc: func(_, obj any) { seen(obj) },
		DeleteFunc: seen,
	}
}

// owner finds the target obj belongs to. An owner the caches do not hold yet (a Pod's ReplicaSet whose
// watch event is still on its way) marks nothing: its own arrival marks the target, and the judgement
// then reads both from the caches.
func (ch *changes) owner(nc *nsCache, obj any) (int, bool) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return ch.target("Deployment", o.Namespace, o.Name)
	case *appsv1.StatefulSet:
		return ch.target("StatefulSet", o.Namespace, o.Name)
	case *appsv1.DaemonSet:
		return ch.target("DaemonSet", o.Namespace, o.Name)
	case *batchv1.Job:
		return ch.target("Job", o.Namespace, o.Name)
	case *appsv1.ReplicaSet:
		return ch.controlledBy(o.Namespace, metav1.GetControllerOfNoCopy(o))
	case *corev1.Pod:
		return ch.podOwner(nc, o)
	case *corev1.Event:
		ref := o.InvolvedObject
		switch ref.Kind {
		case "Pod":
			if p, ok := get[*corev1.Pod](nc.pods, ref.Namespace+"/"+ref.Name); ok {
				return ch.podOwner(nc, p)
			}
			return 0, false
		case "ReplicaSet":
			if rs, ok := get[*appsv1.ReplicaSet](nc.replicaSets, ref.Namespace+"/"+ref.Name); ok {
				return ch.controlledBy(rs.Namespace, metav1.GetControllerOfNoCopy(rs))
			}
			return 0, false
		}
		return ch.target(ref.Kind, ref.Namespace, ref.Name)
	}
	return 0, false
}

func (ch *changes) podOwner(nc *nsCache, p *corev1.Pod) (int, bool) {
	ref := metav1.GetControllerOfNoCopy(p)
	if ref == nil {
		return 0, false
	}
	if ref.Kind == "ReplicaSet" {
		rs, ok := get[*appsv1.ReplicaSet](nc.replicaSets, p.Namespace+"/"+ref.Name)
		if !ok {
			return 0, false
		}
		return ch.controlledBy(p.Namespace, metav1.GetControllerOfNoCopy(rs))
	}
	return ch.controlledBy(p.Namespace, ref)
}

func (ch *changes) controlledBy(namespace string, ref *metav1.OwnerReference) (int, bool) {
	if ref == nil {
		return 0, false
	}
	return ch.target(ref.Kind, namespace, ref.Name)
}

func (ch *changes) target(kind, namespace, name string) (int, bool) {
	i, ok := ch.targets[targetKey{kind, namespace, name}]
	return i, ok
}

// recheckEvery is how often a target whose objects did not change is judged again for the rules that turn
// on time alone, when that many targets are being timed (a rule's grace window running, a bake, the
// deadline passed): every tick, but no more often than about a millisecond per timed target. A judgement
// costs about 50 µs (gathering the input from the caches, comparing the templates of the ReplicaSets);
// 1,000 workloads judged four times a second would take a fifth of a core from the API server and
// controllers that share the machine. The watch-driven judgements (changes) are not delayed.
func recheckEvery(tick time.Duration, targets int) time.Duration {
	return max(tick, time.Duration(targets)*time.Millisecond)
}

// settleFor is how long a pass waits, after the previous one began, before it judges new changes: the
// watch events of a large release come in bursts (a ReplicaSet, its two pods and their events within
// milliseconds), and judging the workload once per burst instead of once per event saves most of the
// judgements of 1,000 workloads starting up. About 0.1 ms per target: nothing for a small release, 100 ms
// for 1,000 workloads, well inside the seconds in which a failure is to be reported.
func settleFor(targets int) time.Duration {
	return time.Duration(targets) * 100 * time.Microsecond
}
