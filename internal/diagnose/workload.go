package diagnose

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	deploymentutil "k8s.io/kubectl/pkg/util/deployment"
	"k8s.io/kubectl/pkg/util/podutils"
)

// This file reads the workload itself: is the rollout complete (the same tests as `kubectl rollout status`),
// how far it got, which object creates its new pods, and the Deployment's own ProgressDeadlineExceeded.

// rollout is the part of a workload the rules need, whatever its kind.
type rollout struct {
	kind, name, namespace string
	complete              bool
	// waiting says why the rollout is not complete yet, kubectl style.
	waiting  string
	progress string
	// newPods are the pods of the revision being rolled out.
	newPods []corev1.Pod
	// creator is the object that creates the new pods and receives their FailedCreate events: the new
	// ReplicaSet of a Deployment, the StatefulSet or DaemonSet itself.
	creatorKind, creatorName string
	creatorUID               types.UID
	// creating is true while the creator still misses pods, so a FailedCreate describes a live problem.
	creating bool
	// replicaFailure is the creator's ReplicaFailure=True condition, if any.
	replicaFailure *condition
	// terminating is true when some pod of the workload is being deleted: quota it holds is about to free up.
	terminating bool
	// allPods are the workload's pods of every revision.
	allPods    []corev1.Pod
	deployment *appsv1.Deployment
	job        *batchv1.Job
}

func (r *rollout) ref() string { return objectKey(r.kind, r.name) }

// condition is a status condition of any object, flattened for evidence.
type condition struct {
	object, typ, status, reason, message string
	since                                time.Time
}

func (c condition) evidence() Evidence {
	return Evidence{Object: c.object, Text: fmt.Sprintf("condition %s=%s %s: %s", c.typ, c.status, c.reason, c.message)}
}

func newRollout(in Input) (*rollout, error) {
	var r *rollout
	switch w := in.Workload.(type) {
	case *appsv1.Deployment:
		r = deploymentRollout(w, in.ReplicaSets, in.Pods)
	case *appsv1.StatefulSet:
		r = statefulSetRollout(w, in.Pods)
	case *appsv1.DaemonSet:
		r = daemonSetRollout(w, in.Pods)
	case *batchv1.Job:
		r = jobRollout(w, in.Pods)
	case nil:
		return nil, fmt.Errorf("no workload given: pass a Deployment, StatefulSet, DaemonSet or Job")
	default:
		return nil, fmt.Errorf("cannot diagnose %T: only Deployments, StatefulSets, DaemonSets and Jobs are supported", w)
	}
	r.allPods = in.Pods
	for i := range in.Pods {
		if in.Pods[i].DeletionTimestamp != nil {
			r.terminating = true
		}
	}
	return r, nil
}

// deploymentRollout applies kubectl's test: the controller observed the spec, every replica is updated, no old
// replica is left and every updated replica is available.
func deploymentRollout(d *appsv1.Deployment, rss []appsv1.ReplicaSet, pods []corev1.Pod) *rollout {
	r := &rollout{kind: "Deployment", name: d.Name, namespace: d.Namespace, deployment: d}
	want := replicasOf(d.Spec.Replicas)
	st := d.Status
	switch {
	case st.ObservedGeneration < d.Generation:
		r.waiting = "waiting for the deployment controller to observe the new spec"
	case st.UpdatedReplicas < want:
		r.waiting = fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, want)
	case st.Replicas > st.UpdatedReplicas:
		r.waiting = fmt.Sprintf("%d old replicas pending termination", st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < st.UpdatedReplicas:
		r.waiting = fmt.Sprintf("%d of %d updated replicas available", st.AvailableReplicas, st.UpdatedReplicas)
	default:
		r.complete = true
	}
	// Until the controller observes the new spec, status.updatedReplicas still counts the previous revision.
	updated, ready := st.UpdatedReplicas, int32(0)
	if st.ObservedGeneration < d.Generation {
		updated = 0
	}
	if rs := newReplicaSet(d, rss); rs != nil {
		r.newPods = podsOfReplicaSet(rs, pods)
		r.creatorKind, r.creatorName, r.creatorUID = "ReplicaSet", rs.Name, rs.UID
		// The RS status lags behind its pods; missing pods by either count mean creation is still pending.
		r.creating = rs.Status.Replicas < replicasOf(rs.Spec.Replicas) || int32(len(r.newPods)) < replicasOf(rs.Spec.Replicas)
		ready = rs.Status.ReadyReplicas
		if st.ObservedGeneration < d.Generation {
			updated = rs.Status.Replicas
		}
		for _, c := range rs.Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue {
				r.replicaFailure = &condition{r.creatorKind + "/" + rs.Name, string(c.Type), string(c.Status), c.Reason, c.Message, c.LastTransitionTime.Time}
				r.creating = true
			}
		}
	}
	// The deployment controller mirrors a ReplicaFailure of any of its ReplicaSets, old ones included (right
	// after a rollback the abandoned revision's failure lingers), so it counts only when it names a pod of
	// the new ReplicaSet ("pods \"web-5cffbd8765-\" is forbidden: ...").
	if c := deploymentutil.GetDeploymentCondition(st, appsv1.DeploymentReplicaFailure); c != nil && c.Status == corev1.ConditionTrue && r.replicaFailure == nil && r.creatorName != "" &&
		strings.Contains(c.Message, `"`+r.creatorName+"-") {
		r.replicaFailure = &condition{r.ref(), string(c.Type), string(c.Status), c.Reason, c.Message, c.LastTransitionTime.Time}
		r.creating = true
	}
	r.progress = fmt.Sprintf("%d/%d updated, %d ready", updated, want, ready)
	if old := st.Replicas - st.UpdatedReplicas; old > 0 && st.ObservedGeneration >= d.Generation {
		r.progress += fmt.Sprintf(", %d old", old)
	}
	return r
}

// statefulSetRollout applies kubectl's test: the controller observed the spec, enough replicas are ready, and
// the update reached every pod outside the partition (or, without a RollingUpdate block, the current revision
// caught up with the update revision). OnDelete sets only update pods someone deletes, so for them a ready,
// observed StatefulSet is complete.
func statefulSetRollout(s *appsv1.StatefulSet, pods []corev1.Pod) *rollout {
	r := &rollout{kind: "StatefulSet", name: s.Name, namespace: s.Namespace,
		creatorKind: "StatefulSet", creatorName: s.Name, creatorUID: s.UID}
	want := replicasOf(s.Spec.Replicas)
	st := s.Status
	strategy := s.Spec.UpdateStrategy
	switch {
	case st.ObservedGeneration == 0 || st.ObservedGeneration < s.Generation:
		r.waiting = "waiting for the statefulset controller to observe the new spec"
	case st.ReadyReplicas < want:
		r.waiting = fmt.Sprintf("%d of %d pods ready", st.ReadyReplicas, want)
	case strategy.Type == appsv1.OnDeleteStatefulSetStrategyType:
		r.complete = true
	case strategy.RollingUpdate != nil:
		target := want
		if p := strategy.RollingUpdate.Partition; p != nil {
			target -= *p
		}
		if st.UpdatedReplicas < target {
			r.waiting = fmt.Sprintf("%d of %d pods updated", st.UpdatedReplicas, target)
		} else {
			r.complete = true
		}
	case st.UpdateRevision != st.CurrentRevision:
		r.waiting = fmt.Sprintf("%d pods at revision %s, waiting for the rest", st.UpdatedReplicas, st.UpdateRevision)
	default:
		r.complete = true
	}
	r.newPods = podsOfStatefulSetRevision(s, pods)
	// Status lags behind the controller's deletes; create.go checks instead whether the pod a FailedCreate
	// names exists by now.
	r.creating = !r.complete
	r.progress = fmt.Sprintf("%d/%d updated, %d ready", st.UpdatedReplicas, want, countReady(r.newPods))
	return r
}

// daemonSetRollout applies kubectl's test: the controller observed the spec, every scheduled daemon pod is
// updated and available. OnDelete DaemonSets only need to be observed and available.
func daemonSetRollout(ds *appsv1.DaemonSet, pods []corev1.Pod) *rollout {
	r := &rollout{kind: "DaemonSet", name: ds.Name, namespace: ds.Namespace,
		creatorKind: "DaemonSet", creatorName: ds.Name, creatorUID: ds.UID}
	st := ds.Status
	onDelete := ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType
	switch {
	case st.ObservedGeneration < ds.Generation:
		r.waiting = "waiting for the daemonset controller to observe the new spec"
	case !onDelete && st.UpdatedNumberScheduled < st.DesiredNumberScheduled:
		r.waiting = fmt.Sprintf("%d of %d pods updated", st.UpdatedNumberScheduled, st.DesiredNumberScheduled)
	case st.NumberAvailable < st.DesiredNumberScheduled:
		r.waiting = fmt.Sprintf("%d of %d pods available", st.NumberAvailable, st.DesiredNumberScheduled)
	default:
		r.complete = true
	}
	r.newPods = podsOfDaemonSetRevision(ds, pods)
	r.creating = !r.complete // an incomplete rollout may still be missing pods; status lags behind
	r.progress = fmt.Sprintf("%d/%d updated, %d ready", st.UpdatedNumberScheduled, st.DesiredNumberScheduled, countReady(r.newPods))
	return r
}

// deadlineFindings reports the deployment controller's own verdict: Progressing=False with reason
// ProgressDeadlineExceeded, once it describes the current generation.
func deadlineFindings(r *rollout) []finding {
	d := r.deployment
	if d == nil || d.Status.ObservedGeneration < d.Generation {
		return nil
	}
	c := deploymentutil.GetDeploymentCondition(d.Status, appsv1.DeploymentProgressing)
	if c == nil || c.Status != corev1.ConditionFalse || c.Reason != deploymentutil.TimedOutReason {
		return nil
	}
	deadline := "its progress deadline"
	if d.Spec.ProgressDeadlineSeconds != nil {
		deadline = fmt.Sprintf("its progress deadline (%ds)", *d.Spec.ProgressDeadlineSeconds)
	}
	cond := condition{r.ref(), string(c.Type), string(c.Status), c.Reason, c.Message, c.LastTransitionTime.Time}
	return []finding{{
		reason:    ProgressDeadlineExceeded,
		confirmed: true,
		since:     c.LastTransitionTime.Time,
		object:    r.ref(),
		message:   fmt.Sprintf("deployment %s made no progress within %s: %s", d.Name, deadline, c.Message),
		fix:       ProgressDeadlineExceeded.Fix(),
		evidence:  []Evidence{cond.evidence()},
	}}
}

func replicasOf(p *int32) int32 {
	if p == nil {
		return 1 // the API default
	}
	return *p
}

func countReady(pods []corev1.Pod) int {
	n := 0
	for i := range pods {
		if podutils.IsPodReady(&pods[i]) {
			n++
		}
	}
	return n
}
