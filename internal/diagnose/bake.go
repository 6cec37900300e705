package diagnose

import (
	"fmt"
	"time"

	"github.com/rollguard/rollguard/internal/oneline"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The bake window. A release that became healthy is watched a while longer (deploy --bake): some failures
// only show under traffic or after a cache warms up. Input.Started is when the window opened (the release
// was healthy then) and Input.Deadline when it closes. In that window:
//
//   - a container of a new pod that terminates (a restart, an OOM kill) fails the release as CrashLoop at
//     once: before the window it would have been one restart; after a healthy rollout it is the signal the
//     bake exists for;
//   - a new pod that was ready when the window opened and has been unready for ReadinessSlack fails it as
//     ReadinessFailed; a shorter blip (a slow dependency for a few seconds) does not;
//   - pods created since the window opened (replacements of lost ones) are judged by the ordinary rules
//     (Diagnose), so one that cannot pull its image or start fails as it would during the rollout; the pods
//     that were there when it opened are judged by the two rules above only, so a readiness blip is not
//     failed by the rollout's readiness wait.
//
// When the window closes without a failure the workload is Healthy; until then it is Progressing.

// Bake judges one workload during its bake window.
func Bake(in Input, th Thresholds) Verdict {
	ordinary := in
	ordinary.Deadline = time.Time{} // the window's end is no timeout
	ordinary.Pods = nil
	for _, p := range in.Pods {
		if !p.CreationTimestamp.Time.Before(in.Started) {
			ordinary.Pods = append(ordinary.Pods, p)
		}
	}
	if v := Diagnose(ordinary, th); v.Status == Failed {
		return v
	}
	if _, ok := in.Workload.(*unstructured.Unstructured); ok {
		return bakeVerdict(Verdict{Workload: customRef(in), Status: Progressing}, nil, in)
	}
	r, err := newRollout(in)
	if err != nil {
		return Verdict{Status: Progressing, Message: err.Error()}
	}
	v := Verdict{Workload: r.ref(), Progress: r.progress}
	return bakeVerdict(v, r, in, bakeFindings(r, in, th)...)
}

// bakeVerdict is Failed on a confirmed finding, Healthy once the window closed, Progressing until then.
func bakeVerdict(v Verdict, r *rollout, in Input, found ...finding) Verdict {
	if r != nil {
		for _, f := range found {
			if f.confirmed {
				return decide(v, r, found, in.Now, time.Time{})
			}
		}
	}
	window := in.Deadline.Sub(in.Started).Round(time.Second)
	if !in.Now.Before(in.Deadline) {
		v.Status, v.Message = Healthy, fmt.Sprintf("stayed healthy through the bake window (%s)", window)
		return v
	}
	v.Status = Progressing
	v.Message = fmt.Sprintf("baking for %s, until %s", window, in.Deadline.UTC().Format(time.TimeOnly))
	if len(found) > 0 {
		v.Message += "; not failed yet: " + found[0].message
		v.Evidence = collect(found)
	}
	v.Message = oneline.Fold(v.Message)
	return v
}

// bakeFindings looks at the new pods for what the window watches for: terminations and lost readiness
// since it opened.
func bakeFindings(r *rollout, in Input, th Thresholds) []finding {
	var out []finding
	for i := range r.newPods {
		p := &r.newPods[i]
		if disrupted(p) {
			continue
		}
		for _, cs := range containerStatuses(p) {
			term := cs.LastTerminationState.Terminated
			if cs.State.Terminated != nil {
				term = cs.State.Terminated
			}
			if term == nil || term.FinishedAt.Time.Before(in.Started) || isInit(p, cs.Name) && term.ExitCode == 0 {
				continue
			}
			c := containerCheck{pod: p, status: cs, now: in.Now, th: th}
			f, ok := c.crashLoop(in.Logs)
			if !ok {
				f = finding{reason: CrashLoop, object: c.object(), evidence: []Evidence{c.stateEvidence()},
					message: fmt.Sprintf("pod %s: container %s exited with code %d (%s)", p.Name, cs.Name, term.ExitCode, term.Reason)}
			}
			f.confirmed, f.since, f.fix = true, term.FinishedAt.Time, CrashLoop.Fix()
			f.message = fmt.Sprintf("%s during the bake window, %s after it opened", f.message, term.FinishedAt.Sub(in.Started).Round(time.Second))
			out = append(out, f)
		}
		if f, ok := lostReadiness(p, in, th); ok {
			out = append(out, f)
		}
	}
	return out
}

// lostReadiness: a pod that was ready when the window opened and is not ready now.
func lostReadiness(p *corev1.Pod, in Input, th Thresholds) (finding, bool) {
	ready := conditionOf(p, corev1.PodReady)
	if ready == nil || ready.Status == corev1.ConditionTrue || !p.CreationTimestamp.Time.Before(in.Started) ||
		ready.LastTransitionTime.Time.Before(in.Started) {
		return finding{}, false
	}
	since := ready.LastTransitionTime.Time
	unready := in.Now.Sub(since)
	return finding{
		reason:    ReadinessFailed,
		confirmed: unready >= th.ReadinessSlack,
		since:     since,
		object:    objectKey("Pod", p.Name),
		message: fmt.Sprintf("pod %s lost readiness during the bake window, %s after it opened, and has been unready for %s (tolerated: %s)",
			p.Name, since.Sub(in.Started).Round(time.Second), unready.Round(time.Second), th.ReadinessSlack),
		fix: ReadinessFailed.Fix(),
		evidence: []Evidence{{Object: objectKey("Pod", p.Name),
			Text: fmt.Sprintf("condition Ready=%s %s since %s", ready.Status, ready.Reason, since.UTC().Format(time.RFC3339))}},
	}, true
}

func isInit(p *corev1.Pod, name string) bool {
	for _, c := range p.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// customRef names a custom resource for its verdict.
func customRef(in Input) string {
	u := in.Workload.(*unstructured.Unstructured)
	return objectKey(u.GetKind(), u.GetName())
}
