package guard

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/track"
)

// concurrentReconciles bounds the reconciles running at once per kind. Most read only the caches; the one
// that starts a rollout makes about ten API calls in a row (lock, records, annotation), and its follower —
// hence the verdict — waits for them. A change applied to fifty workloads at once (one kubectl apply, one
// GitOps sync) must not start them eight at a time; the API load stays bounded by the client's rate limit.
const concurrentReconciles = 64

// controller registers the reconciler of one workload kind: its own changes, its ReplicaSets or
// ControllerRevisions (a new revision appears), and its namespace's guard label.
func (g *Guard) controller(mgr manager.Manager, kind string) error {
	b := ctrl.NewControllerManagedBy(mgr).Named("guard-"+kind).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrentReconciles}).
		For(newObject(kind)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(g.namespaceWorkloads(kind)),
			builder.WithPredicates(predicate.LabelChangedPredicate{}))
	if kind == "Deployment" {
		b = b.Owns(&appsv1.ReplicaSet{})
	} else {
		b = b.Owns(&appsv1.ControllerRevision{})
	}
	err := b.Complete(reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		return g.reconcile(ctx, key{kind, req.Namespace, req.Name})
	}))
	if err != nil {
		return fmt.Errorf("setting up the %s controller: %w", kind, err)
	}
	return nil
}

// namespaceWorkloads maps a namespace whose labels changed to its workloads of one kind.
func (g *Guard) namespaceWorkloads(kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var reqs []reconcile.Request
		list := newList(kind)
		if err := g.cache.List(ctx, list, client.InNamespace(o.GetName()), client.UnsafeDisableDeepCopy); err != nil {
			return nil
		}
		for _, w := range items(list) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: w.GetNamespace(), Name: w.GetName()}})
		}
		return reqs
	}
}

// reconcile decides whether a workload is in a rollout the guard must follow. It reads only the caches,
// except when a rollout starts (records, the lock) or a restarted guard looks for an unfinished record.
func (g *Guard) reconcile(ctx context.Context, k key) (reconcile.Result, error) {
	g.mu.Lock()
	lead := g.ctx
	g.mu.Unlock()
	if lead == nil {
		return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	w := newObject(k.kind)
	err := g.cache.Get(ctx, types.NamespacedName{Namespace: k.namespace, Name: k.name}, w)
	if apierrors.IsNotFound(err) {
		g.forget(k)
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	var ns corev1.Namespace
	if err := g.cache.Get(ctx, types.NamespacedName{Name: k.namespace}, &ns); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !Guarded(ns.Labels, w.GetAnnotations()) || w.GetDeletionTimestamp() != nil || ns.DeletionTimestamp != nil {
		g.forget(k)
		return reconcile.Result{}, nil
	}
	// A paused Deployment is being edited in steps; its rollout starts when it is resumed.
	if d, ok := w.(*appsv1.Deployment); ok && d.Spec.Paused {
		return reconcile.Result{}, nil
	}
	pol, err := PolicyFor(w.GetName(), w.GetAnnotations())
	if err != nil {
		g.warnOnce(k, w, "InvalidPolicy", err.Error())
		return reconcile.Result{}, nil
	}
	revs, err := revisions(ctx, g.cache, w)
	if err != nil {
		return reconcile.Result{}, err
	}
	hash := currentHash(w, revs)
	if hash == "" {
		return reconcile.Result{}, nil
	}

	st := g.stateOf(k)
	g.mu.Lock()
	if f := st.follow; f != nil {
		if f.hash == hash || f.busy() {
			g.mu.Unlock()
			return reconcile.Result{}, nil
		}
		// The template changed again before the rollout ended: the newer change is the rollout now.
		f.supersede()
		st.follow = nil
	}
	checked := st.checked
	st.checked = true
	g.mu.Unlock()

	in, err := g.input(ctx, w)
	if err != nil {
		return reconcile.Result{}, err
	}
	in.Now = time.Now()
	healthy := diagnose.Diagnose(in, pol.Thresholds).Status == diagnose.Healthy
	if !checked {
		if done, err := g.resume(ctx, k, w, pol, hash, healthy); done || err != nil {
			return reconcile.Result{}, err
		}
		// First sight of a workload whose pods all run the current template (scaling up, or pods lost):
		// that template is established, not being rolled out.
		if !healthy && established(w, in) {
			healthy = true
		}
	}
	g.mu.Lock()
	if healthy {
		// Scaling, an HPA, or a rollout finished: this template is the one to return to from now on.
		st.baseline = hash
		st.handled = nil
		g.mu.Unlock()
		return reconcile.Result{}, nil
	}
	// Not healthy, but no new template (pods lost to a node failure, a scale-up waiting for room): not a
	// rollout. So is a template this guard has already dealt with.
	if hash == st.baseline || st.handled[hash] {
		g.mu.Unlock()
		return reconcile.Result{}, nil
	}
	g.mu.Unlock()
	return g.start(ctx, k, w, pol, hash, revs)
}

// established reports whether no pods of an earlier template remain: what is not ready yet is then a
// matter of capacity or scaling, not of a rollout.
func established(w client.Object, in diagnose.Input) bool {
	switch o := w.(type) {
	case *appsv1.Deployment:
		for _, rs := range in.ReplicaSets {
			if rs.Annotations["deployment.kubernetes.io/revision"] != o.Annotations["deployment.kubernetes.io/revision"] &&
				(rs.Status.Replicas > 0 || (rs.Spec.Replicas != nil && *rs.Spec.Replicas > 0)) {
				return false
			}
		}
		return o.Status.UpdatedReplicas == o.Status.Replicas
	case *appsv1.StatefulSet:
		return o.Status.CurrentRevision == o.Status.UpdateRevision
	case *appsv1.DaemonSet:
		return o.Status.UpdatedNumberScheduled == o.Status.DesiredNumberScheduled
	}
	return false
}

// input gathers the diagnosis input of a workload from the caches, through the tracker's Collect so the
// guard and `rollguard deploy` judge the same objects.
func (g *Guard) input(ctx context.Context, w client.Object) (diagnose.Input, error) {
	ns := w.GetNamespace()
	owners := []types.UID{w.GetUID()}
	var rss appsv1.ReplicaSetList
	if _, ok := w.(*appsv1.Deployment); ok {
		if err := g.cache.List(ctx, &rss, client.InNamespace(ns), client.MatchingFields{ownerIndex: string(w.GetUID())}, client.UnsafeDisableDeepCopy); err != nil {
			return diagnose.Input{}, fmt.Errorf("listing ReplicaSets: %w", err)
		}
		for _, rs := range rss.Items {
			owners = append(owners, rs.UID)
		}
	}
	var pods []corev1.Pod
	for _, uid := range owners {
		var list corev1.PodList
		if err := g.cache.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{ownerIndex: string(uid)}, client.UnsafeDisableDeepCopy); err != nil {
			return diagnose.Input{}, fmt.Errorf("listing pods: %w", err)
		}
		pods = append(pods, list.Items...)
	}
	involved := append([]types.UID(nil), owners...)
	for _, p := range pods {
		involved = append(involved, p.UID)
	}
	var evs []corev1.Event
	for _, uid := range involved {
		var list corev1.EventList
		if err := g.cache.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{involvedIndex: string(uid)}, client.UnsafeDisableDeepCopy); err != nil {
			return diagnose.Input{}, fmt.Errorf("listing events: %w", err)
		}
		evs = append(evs, list.Items...)
	}
	return track.Collect(w, ptrs(rss.Items), ptrs(pods), ptrs(evs)), nil
}

// ptrs yields pointers to a slice's elements.
func ptrs[T any](s []T) func(func(*T) bool) {
	return func(yield func(*T) bool) {
		for i := range s {
			if !yield(&s[i]) {
				return
			}
		}
	}
}

func (g *Guard) stateOf(k key) *workloadState {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.state[k]
	if st == nil {
		st = &workloadState{}
		g.state[k] = st
	}
	return st
}

// forget drops a workload that is gone or no longer guarded; a rollout being followed is let go (its
// record stays as it is: tracking, for whoever guards it next).
func (g *Guard) forget(k key) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if st := g.state[k]; st != nil && st.follow != nil && !st.follow.busy() {
		st.follow.stop()
	}
	delete(g.state, k)
}

// warnOnce emits a Warning Event about a workload the guard cannot act on, once per process and reason.
func (g *Guard) warnOnce(k key, w client.Object, reason, msg string) {
	st := g.stateOf(k)
	g.mu.Lock()
	seen := st.handled["warn:"+reason+msg]
	if st.handled == nil {
		st.handled = map[string]bool{}
	}
	st.handled["warn:"+reason+msg] = true
	g.mu.Unlock()
	if !seen {
		g.event(w, corev1.EventTypeWarning, reason, "%s", msg)
	}
}

func (g *Guard) event(w client.Object, typ, reason, format string, args ...any) {
	g.events.Eventf(w, nil, typ, reason, "Guard", format, args...)
}

func newObject(kind string) client.Object {
	switch kind {
	case "StatefulSet":
		return &appsv1.StatefulSet{}
	case "DaemonSet":
		return &appsv1.DaemonSet{}
	}
	return &appsv1.Deployment{}
}

func newList(kind string) client.ObjectList {
	switch kind {
	case "StatefulSet":
		return &appsv1.StatefulSetList{}
	case "DaemonSet":
		return &appsv1.DaemonSetList{}
	}
	return &appsv1.DeploymentList{}
}

func items(l client.ObjectList) []metav1.Object {
	var out []metav1.Object
	switch l := l.(type) {
	case *appsv1.DeploymentList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *appsv1.StatefulSetList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *appsv1.DaemonSetList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	}
	return out
}
