package diagnose

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
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
	var samples []time.Duration
	for i := range pods {
		if d, ok := startupOf(&pods[i]); ok {
			samples = append(samples, d)
		}
	}
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	return samples[len(samples)/2] + time.Second
}

// startupOf is the time from the pod's containers starting to the pod's Ready transition. A container
// restarted since has a later start than that transition; the pod's own start time stands in then.
func startupOf(p *corev1.Pod) (time.Duration, bool) {
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

// readinessWait is how long a running container may stay unready, and the words that explain it.
func readinessWait(spec *corev1.Container, startup time.Duration, th Thresholds) (time.Duration, string) {
	probes := probeBudget(spec.ReadinessProbe) + probeBudget(spec.StartupProbe)
	if startup <= 0 {
		return probes + th.ReadinessSlack, fmt.Sprintf("its probes allow %s", probes)
	}
	multiple := th.StartupMultiple
	if multiple < 1 {
		multiple = 1
	}
	known := startup.Round(time.Second)
	return max(probes, time.Duration(multiple)*startup) + th.HistorySlack,
		fmt.Sprintf("its probes allow %s; its previous revision became ready in %s", probes, known)
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
