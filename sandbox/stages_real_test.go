package sandbox_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/rollguard/rollguard/sandbox"
)

// TestStagesMatchTheRealNode checks the kwok stages do what the real node (kubelet 1.36, containerd 2.x) was
// seen doing in the captured fixtures (internal/diagnose/testdata/real-*): the words, the order of events
// and the kubelet's back-off timing. Where they used to differ, a rule tuned on kwok could be wrong on a
// real node.
func TestStagesMatchTheRealNode(t *testing.T) {
	t.Parallel()
	t.Run("crash loop: first restart at once, then back-off doubling", func(t *testing.T) {
		t.Parallel()
		ns := cluster.Namespace(t)
		create(t, ns, deployment("app", 1, map[string]string{sandbox.ScenarioLabel: sandbox.ScenarioCrashLoop}, nil))
		var early []string
		p := waitPodFor(t, cluster.Client(), ns, "app", 60*time.Second, "CrashLoopBackOff after the second restart", func(p *corev1.Pod) bool {
			s := p.Status.ContainerStatuses
			if len(s) != 1 || s[0].State.Waiting == nil || s[0].State.Waiting.Reason != "CrashLoopBackOff" {
				return false
			}
			if s[0].RestartCount == 0 {
				early = append(early, s[0].State.Waiting.Message)
			}
			return s[0].RestartCount >= 2
		})
		if len(early) > 0 {
			t.Errorf("CrashLoopBackOff before the first restart (%q); the kubelet restarts a container once at once", early[0])
		}
		cs := p.Status.ContainerStatuses[0]
		if cs.RestartCount == 2 && !strings.HasPrefix(cs.State.Waiting.Message, "back-off 20s restarting failed container=app pod="+p.Name+"_"+ns) {
			t.Errorf("back-off after the third crash: %q; want back-off 20s (10s doubled)", cs.State.Waiting.Message)
		}
		if cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 {
			t.Errorf("lastState %+v, want terminated with exit code 1", cs.LastTerminationState)
		}
		// The kubelet (here kwok) writes the status first and counts the event after: wait for the counts.
		waitEventCount(t, ns, "Normal", "Started", "Container started", 3)
		waitEventCount(t, ns, "Warning", "BackOff", "Back-off restarting failed container app in pod "+p.Name, 2)
	})
	t.Run("image pull: Pulling, then containerd 2's not found", func(t *testing.T) {
		t.Parallel()
		ns := cluster.Namespace(t)
		create(t, ns, deployment("app", 1, map[string]string{sandbox.ScenarioLabel: sandbox.ScenarioImagePullFailure}, nil))
		waitPodFor(t, cluster.Client(), ns, "app", 40*time.Second, "ImagePullBackOff naming the registry's answer", func(p *corev1.Pod) bool {
			s := p.Status.ContainerStatuses
			return len(s) == 1 && s[0].State.Waiting != nil && s[0].State.Waiting.Reason == "ImagePullBackOff" &&
				strings.HasPrefix(s[0].State.Waiting.Message, `Back-off pulling image "`+image+`": ErrImagePull: rpc error: code = NotFound desc = `)
		})
		failed := waitEvent(t, cluster.Client(), ns, "Warning", "Failed", "failed to resolve image: "+image+": not found")
		pulling := waitEvent(t, cluster.Client(), ns, "Normal", "Pulling", `Pulling image "`+image+`"`)
		if pulling.FirstTimestamp.After(failed.FirstTimestamp.Time) {
			t.Errorf("Pulling (%s) after Failed (%s); the kubelet says Pulling first", pulling.FirstTimestamp, failed.FirstTimestamp)
		}
		// The kubelet retries after its 10 s back-off: the same events count the second pull.
		poll(t, 40*time.Second, "a second failed pull counted in the Failed event", func(ctx context.Context) (bool, error) {
			e, err := cluster.Client().CoreV1().Events(ns).Get(ctx, failed.Name, metav1.GetOptions{})
			return err == nil && e.Count >= 2, nil
		})
	})
	t.Run("never ready: refused first, then 503 every period", func(t *testing.T) {
		t.Parallel()
		ns := cluster.Namespace(t)
		d := deployment("app", 1, map[string]string{sandbox.ScenarioLabel: sandbox.ScenarioNeverReady}, nil)
		d.Spec.Template.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1, FailureThreshold: 3,
		}
		create(t, ns, d)
		refused := waitEvent(t, cluster.Client(), ns, "Warning", "Unhealthy", "/healthz\": dial tcp ")
		if !strings.HasSuffix(refused.Message, ":8080: connect: connection refused") || !strings.HasPrefix(refused.Message, `Readiness probe failed: Get "http://`) {
			t.Errorf("first probe failure %q; want the kubelet's connection refused", refused.Message)
		}
		// Period 1 s: the 503 event counts its repeats.
		poll(t, 40*time.Second, "the 503 probe failure repeated each second", func(ctx context.Context) (bool, error) {
			evs, err := cluster.Client().CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			for _, e := range evs.Items {
				if e.Message == "Readiness probe failed: HTTP probe failed with statuscode: 503" && e.Count >= 3 {
					return true, nil
				}
			}
			return false, nil
		})
	})
}

// waitEventCount waits until an event from the kubelet in ns with the given type and reason, whose message
// contains msg, has counted at least n occurrences.
func waitEventCount(t *testing.T, ns, typ, reason, msg string, n int32) {
	t.Helper()
	var seen []string
	poll(t, 40*time.Second, fmt.Sprintf("%s %s %q counted %d times in %s (seen %v)", typ, reason, msg, n, ns, &seen), func(ctx context.Context) (bool, error) {
		evs, err := cluster.Client().CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + reason})
		if err != nil {
			return false, nil
		}
		seen = seen[:0]
		for _, e := range evs.Items {
			seen = append(seen, fmt.Sprintf("%s x%d", e.Message, e.Count))
			if e.Type == typ && strings.Contains(e.Message, msg) && e.Source.Component == "kubelet" && e.Count >= n {
				return true, nil
			}
		}
		return false, nil
	})
}

// waitPodFor is waitPod with its own timeout; ok sees every pod state polled, so it can record states that
// must never happen.
func waitPodFor(t *testing.T, c kubernetes.Interface, ns, app string, timeout time.Duration, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var found *corev1.Pod
	poll(t, timeout, fmt.Sprintf("%s in %s", what, ns), func(ctx context.Context) (bool, error) {
		pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return false, nil
		}
		for i := range pods.Items {
			if ok(&pods.Items[i]) {
				found = &pods.Items[i]
				return true, nil
			}
		}
		return false, nil
	})
	return found
}
