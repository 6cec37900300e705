package diagnose

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Scheduling reasons: Unschedulable, read from new pods' PodScheduled=False condition and the scheduler's
// FailedScheduling events.

var insufficient = regexp.MustCompile(`Insufficient ([\w./-]+)`)

// scheduleFindings: how long an unschedulable pod may wait depends on whether room can appear (scheduleWait).
// The scheduler's message is quoted as is.
func scheduleFindings(r *rollout, ev events, in Input, th Thresholds) []finding {
	var out []finding
	now := in.Now
	for i := range r.newPods {
		p := &r.newPods[i]
		if p.Spec.NodeName != "" || disrupted(p) {
			continue
		}
		failed := ev.about("Pod", p.Name, p.UID, "FailedScheduling")
		var cond *corev1.PodCondition
		for j := range p.Status.Conditions {
			c := &p.Status.Conditions[j]
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				cond = c
			}
		}
		if cond == nil && len(failed) == 0 {
			continue
		}
		// The grace counts from the scheduler's first failure: the earliest of the latest times each record
		// of it allows (the condition's whole second, or when it was first seen; an event's own time).
		var since, start time.Time
		var msg, anchor string
		var evidence []Evidence
		if cond != nil {
			since, msg = cond.LastTransitionTime.Time, cond.Message
			evidence = append(evidence, condition{objectKey("Pod", p.Name), string(cond.Type), string(cond.Status), cond.Reason, clip(cond.Message), since}.evidence())
			anchor = anchorKey("unschedulable", p, "", since)
			start = waitFrom(since, anchor, in.Seen)
		}
		for _, e := range failed {
			if t := firstSeen(e); start.IsZero() || t.Add(cutOff(t)).Before(start) {
				start = t.Add(cutOff(t))
			}
		}
		since = earliest(failed, since)
		if len(failed) > 0 {
			msg = failed[len(failed)-1].Message // the scheduler's latest word
		}
		evidence = append(evidence, eventEvidence(failed)...)
		scale := ev.about("Pod", p.Name, p.UID, "NotTriggerScaleUp", "TriggeredScaleUp")
		evidence = append(evidence, eventEvidence(scale)...)
		wait, why := scheduleWait(r, p, scale, in.Autoscaler, th)
		f := finding{
			reason:   Unschedulable,
			since:    since,
			object:   objectKey("Pod", p.Name),
			message:  fmt.Sprintf("pod %s cannot be scheduled: %s (%s)", p.Name, clip(withoutPreemption(msg)), why),
			fix:      scheduleFix(p, msg),
			evidence: evidence,
			anchor:   anchor,
		}
		out = append(out, f.timed(now, start, wait))
	}
	return out
}

// scheduleWait: on a cluster that cannot grow, a pod no node fits fails after th.UnschedulableGrace. Room
// may still appear where the autoscaler adds nodes, pods of the workload are terminating, or the scheduler
// nominated a node after preempting lower-priority pods: those wait th.ScaleUpGrace. The autoscaler's own
// word decides where it spoke last: NotTriggerScaleUp (no node group would fit the pod) fails at once,
// TriggeredScaleUp waits up to th.ScaleUpWait.
func scheduleWait(r *rollout, p *corev1.Pod, scale []corev1.Event, a Autoscaler, th Thresholds) (time.Duration, string) {
	if len(scale) > 0 {
		last := scale[len(scale)-1]
		if last.Reason == "NotTriggerScaleUp" {
			return 0, "the cluster autoscaler will not add a node for it"
		}
		return th.ScaleUpWait, fmt.Sprintf("the cluster autoscaler is adding nodes; waiting up to %s", th.ScaleUpWait)
	}
	switch {
	case p.Status.NominatedNodeName != "":
		return th.ScaleUpGrace, fmt.Sprintf("preempting pods on node %s", p.Status.NominatedNodeName)
	case r.terminating:
		return th.ScaleUpGrace, "pods of the workload are terminating and may free room"
	case a == AutoscalerNone:
		return th.UnschedulableGrace, "the cluster has no node autoscaler"
	case a == AutoscalerUnknown:
		return th.ScaleUpGrace, "the cluster may add nodes"
	}
	return th.ScaleUpGrace, fmt.Sprintf("waiting for %s to add a node", a)
}

// withoutPreemption drops the scheduler's "preemption: ..." tail, which repeats the node count, and the
// dynamic-resource-allocation plugin's "no new claims to deallocate" aside (v1.34+), which says nothing here.
func withoutPreemption(msg string) string {
	if i := strings.Index(msg, "preemption: "); i > 0 {
		msg = msg[:i]
	}
	msg = strings.ReplaceAll(msg, "no new claims to deallocate", "")
	return strings.TrimRight(strings.TrimSpace(msg), ",")
}

func scheduleFix(p *corev1.Pod, msg string) string {
	var fixes []string
	for _, m := range insufficient.FindAllStringSubmatch(msg, -1) {
		res := corev1.ResourceName(strings.TrimRight(m[1], ".,")) // the scheduler ends the sentence with a dot
		fixes = append(fixes, fmt.Sprintf("no node has %s free for the pod's request (%s): lower resources.requests.%s or add node capacity",
			res, podRequest(p, res), res))
	}
	switch {
	case strings.Contains(msg, "didn't match Pod's node affinity/selector"):
		fixes = append(fixes, "no node matches the pod's nodeSelector/affinity: fix them or label the nodes")
	case strings.Contains(msg, "untolerated taint"):
		fixes = append(fixes, "the nodes carry taints the pod does not tolerate: add tolerations or schedule elsewhere")
	case strings.Contains(msg, "PersistentVolumeClaim"):
		fixes = append(fixes, "the pod's PersistentVolumeClaims cannot be bound: check the StorageClass and PersistentVolumes")
	case strings.Contains(msg, "anti-affinity") || strings.Contains(msg, "pod affinity"):
		fixes = append(fixes, "the pod (anti-)affinity rules leave no node: relax them or add nodes")
	}
	if len(fixes) == 0 {
		return Unschedulable.Fix()
	}
	return strings.Join(fixes, "; ")
}

// podRequest sums a resource over the pod's containers (as the scheduler does, ignoring init containers' peaks).
func podRequest(p *corev1.Pod, res corev1.ResourceName) string {
	total := resource.Quantity{}
	for _, c := range p.Spec.Containers {
		if q, ok := c.Resources.Requests[res]; ok {
			total.Add(q)
		}
	}
	if total.IsZero() {
		return "none set"
	}
	return total.String()
}
