package diagnose

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubectl/pkg/util/podutils"
)

// Readiness from the app's own history: an app whose previous revision took 25 s to become ready is not
// broken when its new pods take 25 s, whatever its probes allow; one that became ready in a second is
// reported soon after its probe budget.

// PreviousStartup is how long the pods of earlier revisions in in.Pods took from start to Ready (the upper
// median, so one pod that lost and regained readiness later does not set it), rounded up by the second the
// API's timestamps may have cut off; zero when no such pod is ready. Callers remember it: during a rollout
// the old pods go away.
func PreviousStartup(in Input) time.Duration {
	r, err := newRollout(in)
	if err != nil {
		return 0
	}
	return r.previousStartup()
}

func (r *rollout) previousStartup() time.Duration {
	current := map[string]bool{}
	for i := range r.newPods {
		current[r.newPods[i].Name] = true
	}
	var old []corev1.Pod
	for i := range r.allPods {
		if !current[r.allPods[i].Name] {
			old = append(old, r.allPods[i])
		}
	}
	return medianStartup(old)
}

// medianStartup is the upper median of the pods' start-to-Ready times plus the second timestamps may have
// cut off; zero when none is ready.
func medianStartup(pods []corev1.Pod) time.Duration {
	return median(pods, startupOf)
}

// median is the upper median of measure over the pods it measures, plus the second timestamps may have cut
// off; zero when it measures none.
func median(pods []corev1.Pod, measure func(*corev1.Pod) (time.Duration, bool)) time.Duration {
	var samples []time.Duration
	for i := range pods {
		if d, ok := measure(&pods[i]); ok {
			samples = append(samples, d)
		}
	}
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	return samples[len(samples)/2] + time.Second
}

// newRevisionStartup is how long the new revision's pods that are ready already took, from their first
// container start (a restart before Ready included) to Ready: fresher history than the previous
// revision's, taken on the cluster as loaded as it is now. A new pod is not failed for being slower than
// its ready siblings were (times the multiple): on a loaded node the kubelet reports a crash, a restart or
// readiness seconds late, and the siblings show this revision does get ready here. A revision none of whose
// pods gets ready is not waited on any longer.
func (r *rollout) newRevisionStartup() time.Duration {
	return median(r.newPods, func(p *corev1.Pod) (time.Duration, bool) {
		ready := conditionOf(p, corev1.PodReady)
		if !probed(p) || disrupted(p) || ready == nil || ready.Status != corev1.ConditionTrue {
			return 0, false
		}
		var first time.Time
		if p.Status.StartTime != nil {
			first = p.Status.StartTime.Time
		}
		for _, cs := range p.Status.ContainerStatuses {
			for _, t := range []*metav1.Time{startedAt(cs.LastTerminationState), startedAt(cs.State)} {
				if t != nil && !t.After(ready.LastTransitionTime.Time) && (first.IsZero() || t.Time.Before(first)) {
					first = t.Time
				}
			}
		}
		if first.IsZero() || first.After(ready.LastTransitionTime.Time) {
			return 0, false
		}
		return ready.LastTransitionTime.Sub(first), true
	})
}

func startedAt(s corev1.ContainerState) *metav1.Time {
	switch {
	case s.Running != nil:
		return &s.Running.StartedAt
	case s.Terminated != nil:
		return &s.Terminated.StartedAt
	}
	return nil
}

// startupOf is the time from the pod's containers starting to the pod's Ready transition. A container
// restarted since has a later start than that transition; the pod's own start time stands in then. A pod
// without a readiness or startup probe has no such time: the kubelet marks it Ready as soon as its
// containers run, which says how fast the runtime starts them, not how long the app needs to serve (a
// release that adds a probe to such an app must not be timed by it).
func startupOf(p *corev1.Pod) (time.Duration, bool) {
	if !probed(p) {
		return 0, false
	}
	var ready time.Time
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = c.LastTransitionTime.Time
		}
	}
	if ready.IsZero() {
		return 0, false
	}
	var start time.Time
	if p.Status.StartTime != nil {
		start = p.Status.StartTime.Time
	}
	for _, cs := range p.Status.ContainerStatuses {
		if run := cs.State.Running; run != nil && !run.StartedAt.After(ready) && run.StartedAt.After(start) {
			start = run.StartedAt.Time
		}
	}
	if start.IsZero() || start.After(ready) {
		return 0, false
	}
	return ready.Sub(start), true
}

// history is how long the app took to become ready, and whose pods say so.
type history struct {
	took  time.Duration
	whose string // "its previous revision became ready in", "its ready new pods took"
}

// appHistory is the larger of what the previous revision (in.KnownStartup, the old pods) and the new
// revision's ready pods took; zero when neither is known.
func appHistory(r *rollout, in Input) history {
	h := history{max(in.KnownStartup, r.previousStartup()), "its previous revision became ready in"}
	if n := r.newRevisionStartup(); n > h.took {
		h = history{n, "its ready new pods took"}
	}
	return h
}

// readyNotSeen is true when the pods have a probe and none of the running ones is seen Ready.
func readyNotSeen(pods []corev1.Pod) bool {
	live := false
	for i := range pods {
		p := &pods[i]
		if !probed(p) || disrupted(p) || p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if conditionTrue(p, corev1.PodReady) {
			return false
		}
		live = true
	}
	return live
}

// probed is true when a probe decides the pod's readiness (a readiness or startup probe on any container,
// restartable init containers included).
func probed(p *corev1.Pod) bool {
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range list {
			if list[i].ReadinessProbe != nil || list[i].StartupProbe != nil {
				return true
			}
		}
	}
	return false
}

// readinessWait is how long a running container may stay unready, and the words that explain it. The
// history (startup) is how long a first start of the app took, so it sets the wait only for a container in
// its first start; rerun says why this one is not ("restarted 1 time", "was ready before"), empty when it
// is. Such a container is given at least what a first deploy gets (its probes from its own start plus
// ReadinessSlack): a restart or a lost readiness is the bumpy path (a dependency that was late, a node
// under load), on which the first start's time says nothing, and one that never gets ready still fails
// then, or earlier as a CrashLoop if it keeps crashing.
func readinessWait(spec *corev1.Container, startup history, rerun string, th Thresholds) (time.Duration, string) {
	probes := probeBudget(spec.ReadinessProbe) + probeBudget(spec.StartupProbe)
	first := probes + th.ReadinessSlack
	if startup.took <= 0 {
		if rerun != "" {
			return first, fmt.Sprintf("its probes allow %s since it %s", probes, rerun)
		}
		return first, fmt.Sprintf("its probes allow %s", probes)
	}
	multiple := th.StartupMultiple
	if multiple < 1 {
		multiple = 1
	}
	known := startup.took.Round(time.Second)
	history := max(probes, time.Duration(multiple)*startup.took) + th.HistorySlack
	words := fmt.Sprintf("its probes allow %s; %s %s", probes, startup.whose, known)
	if rerun != "" {
		return max(history, first), words + fmt.Sprintf(", which does not bound a container that %s", rerun)
	}
	return history, words
}

// gateFindings names the readiness gates holding pods whose containers are all ready. They never fail a
// release by themselves (a load balancer may take a minute to register targets); they explain a Timeout.
func gateFindings(r *rollout) []finding {
	var out []finding
	for i := range r.newPods {
		p := &r.newPods[i]
		if len(p.Spec.ReadinessGates) == 0 || podutils.IsPodReady(p) || !conditionTrue(p, corev1.ContainersReady) {
			continue
		}
		var held []string
		var ev []Evidence
		since := p.CreationTimestamp.Time
		for _, g := range p.Spec.ReadinessGates {
			c := conditionOf(p, g.ConditionType)
			switch {
			case c == nil:
				held = append(held, fmt.Sprintf("%q (not reported yet)", g.ConditionType))
			case c.Status != corev1.ConditionTrue:
				held = append(held, fmt.Sprintf("%q (%s)", g.ConditionType, strings.TrimSpace(c.Reason+" "+c.Message)))
				ev = append(ev, condition{objectKey("Pod", p.Name), string(c.Type), string(c.Status), c.Reason, clip(c.Message), c.LastTransitionTime.Time}.evidence())
			}
		}
		if len(held) == 0 {
			continue
		}
		out = append(out, finding{
			reason:   ReadinessFailed,
			since:    since,
			object:   objectKey("Pod", p.Name),
			message:  fmt.Sprintf("pod %s: containers ready, held by readiness gate %s", p.Name, strings.Join(held, ", ")),
			fix:      "the controller that owns the readiness gate (a load balancer, a service mesh) has not marked the pod ready: check it and its view of the pod",
			evidence: ev,
		})
	}
	return out
}

func conditionOf(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func conditionTrue(p *corev1.Pod, t corev1.PodConditionType) bool {
	c := conditionOf(p, t)
	return c != nil && c.Status == corev1.ConditionTrue
}

// disrupted is true for a pod the kubelet evicted or the scheduler preempted: its controller replaces it,
// so it says nothing about the release (kubernetes "DisruptionTarget" condition, or the older
// phase=Failed reason=Evicted).
func disrupted(p *corev1.Pod) bool {
	if p.Status.Phase == corev1.PodFailed && (p.Status.Reason == "Evicted" || p.Status.Reason == "Preempting") {
		return true
	}
	return conditionTrue(p, corev1.DisruptionTarget)
}
