package guard

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// unstick is Kubernetes' "forced rollback" of a StatefulSet, done while the guard's rollback of it runs.
// With OrderedReady pod management the StatefulSet controller never replaces a pod of the failed
// revision that is not ready, so the restored template alone never rolls out ("you must also delete any
// Pods that StatefulSet had already attempted to run with the bad configuration", the Kubernetes docs
// say). Once the controller has taken the restored template (its update revision is no longer the failed
// one), such pods are deleted, each once; the controller recreates them from the restored template. Ready
// pods are left to its rolling update. It returns when ctx ends (the rollback is over).
func (g *Guard) unstick(ctx context.Context, k key, failed string) {
	ticker := time.NewTicker(g.opts.Tick)
	defer ticker.Stop()
	deleted := map[types.UID]bool{}
	for {
		var sts appsv1.StatefulSet
		err := g.cache.Get(ctx, types.NamespacedName{Namespace: k.namespace, Name: k.name}, &sts)
		if err == nil && forcedRollbackNeeded(&sts, failed) {
			var pods corev1.PodList
			if err := g.cache.List(ctx, &pods, client.InNamespace(k.namespace), client.MatchingFields{ownerIndex: string(sts.UID)}, client.UnsafeDisableDeepCopy); err == nil {
				for i := range pods.Items {
					p := &pods.Items[i]
					if !stuckAt(p, failed) || deleted[p.UID] {
						continue
					}
					uid := p.UID
					err := g.kc.Typed.CoreV1().Pods(k.namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
					if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
						g.log.Warn("forced rollback: deleting a stuck pod", "workload", k.String(), "pod", p.Name, "error", err)
						continue
					}
					deleted[uid] = true
					g.log.Info("forced rollback: deleted a pod stuck on the failed revision", "workload", k.String(), "pod", p.Name, "revision", failed)
					g.event(&sts, corev1.EventTypeNormal, "ForcedRollback", "deleted pod %s, not ready on the failed revision %s, so the StatefulSet controller recreates it from the restored template", p.Name, failed)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// forcedRollbackNeeded reports whether a StatefulSet that the guard is rolling back away from the failed
// revision has taken the restored template and manages its pods OrderedReady (Parallel ones are replaced
// by the controller itself).
func forcedRollbackNeeded(sts *appsv1.StatefulSet, failed string) bool {
	if sts.Spec.PodManagementPolicy == appsv1.ParallelPodManagement {
		return false
	}
	return sts.Status.ObservedGeneration >= sts.Generation && sts.Status.UpdateRevision != "" && sts.Status.UpdateRevision != failed
}

// stuckAt reports whether a pod runs the failed revision, is not ready, and is not already going away.
func stuckAt(p *corev1.Pod, failed string) bool {
	if p.Labels[appsv1.ControllerRevisionHashLabelKey] != failed || p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return false
		}
	}
	return true
}
