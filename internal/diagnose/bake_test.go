package diagnose

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Each row bakes the healthy rollout of testdata/deployment-healthy (captured from the sandbox) in a
// one-minute window opening 10s after capture, with its first new pod changed as the row says. Every failure
// rule has its counter-scenario: the same signal outside the window, or shorter than tolerated.
func TestBake(t *testing.T) {
	f := loadFixture(t, filepath.Join("testdata", "deployment-healthy"))
	opened := f.captured.Add(10 * time.Second)
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(opened.Add(d)) }
	restarted := func(finished time.Duration) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			cs := &p.Status.ContainerStatuses[0]
			cs.RestartCount = 1
			cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", FinishedAt: at(finished)}
		}
	}
	readyAt := func(status corev1.ConditionStatus, since time.Duration) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			for i := range p.Status.Conditions {
				if p.Status.Conditions[i].Type == corev1.PodReady {
					p.Status.Conditions[i].Status, p.Status.Conditions[i].LastTransitionTime = status, at(since)
				}
			}
		}
	}
	unready := func(since time.Duration) func(*corev1.Pod) { return readyAt(corev1.ConditionFalse, since) }
	for _, tc := range []struct {
		name   string
		change func(*corev1.Pod)
		// unavailable: the Deployment counts the changed pod as unavailable, as its controller does.
		unavailable bool
		// knownStartup: the app starts in this long, so the rollout's readiness wait would be short.
		knownStartup time.Duration
		now          time.Duration // since the window opened
		status       Status
		reason       Reason
		says         string
	}{
		{name: "healthy inside the window keeps baking", now: 30 * time.Second, status: Progressing, says: "baking for 1m0s"},
		{name: "healthy to the end of the window is healthy", now: time.Minute, status: Healthy, says: "stayed healthy through the bake window (1m0s)"},
		{name: "a restart in the window fails", change: restarted(5 * time.Second), now: 6 * time.Second, status: Failed, reason: CrashLoop,
			says: "exited with code 1 (Error) during the bake window, 5s after it opened"},
		{name: "a restart before the window is not the bake's", change: restarted(-5 * time.Second), now: time.Minute, status: Healthy},
		{name: "readiness lost past the slack fails", change: unready(5 * time.Second), now: 16 * time.Second, status: Failed, reason: ReadinessFailed,
			says: "lost readiness during the bake window, 5s after it opened, and has been unready for 11s"},
		{name: "a readiness blip within the slack keeps baking", change: unready(5 * time.Second), now: 8 * time.Second, status: Progressing,
			says: "not failed yet"},
		{name: "readiness back before the window closed is healthy", change: readyAt(corev1.ConditionTrue, 9*time.Second), now: time.Minute, status: Healthy},
		{name: "a blip on a probed container is the bake's to judge, not the rollout's readiness wait",
			change: func(p *corev1.Pod) {
				unready(5 * time.Second)(p)
				p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 1}
				p.Status.ContainerStatuses[0].Ready = false
				p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, LastTransitionTime: at(5 * time.Second)})
			},
			unavailable: true, knownStartup: time.Second, now: 9 * time.Second, status: Progressing, says: "not failed yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := f.in
			in.Pods = make([]corev1.Pod, len(f.in.Pods))
			for i := range f.in.Pods {
				in.Pods[i] = *f.in.Pods[i].DeepCopy()
			}
			if tc.change != nil {
				tc.change(&in.Pods[len(in.Pods)-1]) // a pod of the new revision
			}
			in.KnownStartup = tc.knownStartup
			if tc.unavailable {
				d := in.Workload.(*appsv1.Deployment).DeepCopy()
				d.Status.AvailableReplicas--
				in.Workload = d
			}
			in.Started, in.Deadline, in.Now = opened, opened.Add(time.Minute), opened.Add(tc.now)
			v := Bake(in, DefaultThresholds())
			if v.Status != tc.status || v.Reason != tc.reason || !strings.Contains(v.Message, tc.says) {
				t.Fatalf("got %s, want %s %s saying %q", v.Line(), tc.status, tc.reason, tc.says)
			}
			if v.Status == Failed && (v.Fix == "" || len(v.Evidence) == 0 || v.Since.IsZero()) {
				t.Errorf("failed verdict lacks fix, evidence or since: %+v", v)
			}
		})
	}
}
