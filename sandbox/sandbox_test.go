package sandbox_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/rollguard/rollguard/sandbox"
)

var cluster *sandbox.Cluster

func TestMain(m *testing.M) { sandbox.Main(m, sandbox.Options{}, &cluster) }

const image = "registry.example/app:1.0"

func deployment(name string, replicas int32, labels map[string]string, annotations map[string]string) *appsv1.Deployment {
	podLabels := map[string]string{"app": name}
	for k, v := range labels {
		podLabels[k] = v
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: annotations},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: image,
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
				}}},
			},
		},
	}
}

func poll(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// waitEvent waits for an event in ns with the given reason whose message contains msg.
func waitEvent(t *testing.T, c kubernetes.Interface, ns, typ, reason, msg string) corev1.Event {
	t.Helper()
	var found corev1.Event
	var seen []string
	poll(t, 40*time.Second, fmt.Sprintf("event %s %s %q in %s (seen %v)", typ, reason, msg, ns, &seen), func(ctx context.Context) (bool, error) {
		evs, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		seen = seen[:0]
		for _, e := range evs.Items {
			seen = append(seen, e.Reason+": "+e.Message)
			if e.Type == typ && e.Reason == reason && strings.Contains(e.Message, msg) {
				found = e
				return true, nil
			}
		}
		return false, nil
	})
	return found
}

// waitPod waits until some pod of app in ns satisfies ok.
func waitPod(t *testing.T, c kubernetes.Interface, ns, app, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	return waitPodFor(t, c, ns, app, 40*time.Second, what, ok)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func create(t *testing.T, ns string, d *appsv1.Deployment) {
	t.Helper()
	if _, err := cluster.Client().AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment: %v", err)
	}
}

func TestDeploymentRollsOut(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	c := cluster.Client()
	create(t, ns, deployment("web", 3, nil, nil))
	poll(t, 30*time.Second, "3 ready replicas", func(ctx context.Context) (bool, error) {
		d, err := c.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		s := d.Status
		return s.ObservedGeneration == d.Generation && s.UpdatedReplicas == 3 && s.ReadyReplicas == 3 && s.AvailableReplicas == 3, nil
	})
	pods, err := c.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || !podReady(&p) || p.Status.PodIP == "" || p.Spec.NodeName == "" {
			t.Errorf("pod %s: phase %s ready %v ip %q node %q", p.Name, p.Status.Phase, podReady(&p), p.Status.PodIP, p.Spec.NodeName)
		}
	}
}

func TestScenarios(t *testing.T) {
	t.Parallel()
	waitingReason := func(reason string) func(*corev1.Pod) bool {
		return func(p *corev1.Pod) bool {
			for _, s := range p.Status.ContainerStatuses {
				if s.State.Waiting != nil && s.State.Waiting.Reason == reason {
					return true
				}
			}
			return false
		}
	}
	tests := []struct {
		scenario    string
		annotations map[string]string
		podWhat     string
		pod         func(*corev1.Pod) bool
		evType      string
		evReason    string
		evMessage   string
	}{
		{
			scenario: sandbox.ScenarioImagePullFailure,
			podWhat:  "ImagePullBackOff", pod: waitingReason("ImagePullBackOff"),
			evType: "Warning", evReason: "Failed", evMessage: `Failed to pull image "` + image + `": `,
		},
		{
			scenario: sandbox.ScenarioCrashLoop,
			podWhat:  "CrashLoopBackOff with 2 restarts after exit code 1",
			pod: func(p *corev1.Pod) bool {
				s := p.Status.ContainerStatuses
				return len(s) == 1 && s[0].RestartCount >= 2 && s[0].State.Waiting != nil &&
					s[0].State.Waiting.Reason == "CrashLoopBackOff" && s[0].LastTerminationState.Terminated != nil &&
					s[0].LastTerminationState.Terminated.ExitCode == 1 && p.Status.Phase == corev1.PodRunning
			},
			evType: "Warning", evReason: "BackOff", evMessage: "Back-off restarting failed container app in pod",
		},
		{
			scenario: sandbox.ScenarioNeverReady,
			podWhat:  "running but not ready",
			pod: func(p *corev1.Pod) bool {
				s := p.Status.ContainerStatuses
				return p.Status.Phase == corev1.PodRunning && !podReady(p) && len(s) == 1 && s[0].State.Running != nil
			},
			evType: "Warning", evReason: "Unhealthy", evMessage: "Readiness probe failed: ",
		},
		{
			scenario:    sandbox.ScenarioConfigError,
			annotations: map[string]string{sandbox.MissingConfigMapAnnotation: "db-settings"},
			podWhat:     "CreateContainerConfigError",
			pod: func(p *corev1.Pod) bool {
				w := p.Status.ContainerStatuses
				return len(w) == 1 && w[0].State.Waiting != nil && w[0].State.Waiting.Reason == "CreateContainerConfigError" &&
					w[0].State.Waiting.Message == `configmap "db-settings" not found`
			},
			evType: "Warning", evReason: "Failed", evMessage: `Error: configmap "db-settings" not found`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			create(t, ns, deployment("app", 1, map[string]string{sandbox.ScenarioLabel: tt.scenario}, tt.annotations))
			p := waitPod(t, cluster.Client(), ns, "app", tt.podWhat, tt.pod)
			ev := waitEvent(t, cluster.Client(), ns, tt.evType, tt.evReason, tt.evMessage)
			if ev.InvolvedObject.Name != p.Name || ev.Source.Component != "kubelet" {
				t.Errorf("event %s/%s is about %s from %q; want pod %s from kubelet", ev.Reason, ev.Message, ev.InvolvedObject.Name, ev.Source.Component, p.Name)
			}
		})
	}
	t.Run("image-pull-backoff-event", func(t *testing.T) {
		t.Parallel()
		ns := cluster.Namespace(t)
		create(t, ns, deployment("app", 1, map[string]string{sandbox.ScenarioLabel: sandbox.ScenarioImagePullFailure}, nil))
		waitEvent(t, cluster.Client(), ns, "Normal", "BackOff", `Back-off pulling image "`+image+`"`)
	})
	t.Run(sandbox.ScenarioSlowReady, func(t *testing.T) {
		t.Parallel()
		ns := cluster.Namespace(t)
		create(t, ns, deployment("app", 1, map[string]string{sandbox.ScenarioLabel: sandbox.ScenarioSlowReady},
			map[string]string{sandbox.ReadyAfterAnnotation: "3s"}))
		p := waitPod(t, cluster.Client(), ns, "app", "ready", podReady)
		var readyAt time.Time
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				readyAt = c.LastTransitionTime.Time
			}
		}
		started := p.Status.StartTime.Time
		if d := readyAt.Sub(started); d < 2500*time.Millisecond {
			t.Errorf("pod became ready %s after it started; want about 3s", d)
		}
	})
}

func TestAdmissionAndSchedulingFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := cluster.Client()
	tests := []struct {
		name    string
		setup   func(t *testing.T, ns string, d *appsv1.Deployment)
		kind    string // involved object kind of the event
		reason  string
		message string
	}{
		{
			name: "resource quota",
			setup: func(t *testing.T, ns string, d *appsv1.Deployment) {
				q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "pods"},
					Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}}}
				if _, err := c.CoreV1().ResourceQuotas(ns).Create(ctx, q, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				// The quota controller must have computed usage before pods are admitted against it.
				poll(t, 20*time.Second, "quota status", func(ctx context.Context) (bool, error) {
					q, err := c.CoreV1().ResourceQuotas(ns).Get(ctx, "pods", metav1.GetOptions{})
					return err == nil && q.Status.Hard != nil, nil
				})
			},
			kind: "ReplicaSet", reason: "FailedCreate", message: "exceeded quota",
		},
		{
			name: "limit range",
			setup: func(t *testing.T, ns string, d *appsv1.Deployment) {
				lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "max"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
					Type: corev1.LimitTypeContainer, Max: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}}}}}
				if _, err := c.CoreV1().LimitRanges(ns).Create(ctx, lr, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				d.Spec.Template.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
			},
			kind: "ReplicaSet", reason: "FailedCreate", message: "maximum cpu usage",
		},
		{
			name: "missing service account",
			setup: func(t *testing.T, ns string, d *appsv1.Deployment) {
				d.Spec.Template.Spec.ServiceAccountName = "ghost"
			},
			kind: "ReplicaSet", reason: "FailedCreate", message: `serviceaccount "ghost" not found`,
		},
		{
			name: "insufficient cpu",
			setup: func(t *testing.T, ns string, d *appsv1.Deployment) {
				d.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64")}
			},
			kind: "Pod", reason: "FailedScheduling", message: "Insufficient cpu",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			d := deployment("app", 2, nil, nil)
			tt.setup(t, ns, d)
			create(t, ns, d)
			ev := waitEvent(t, c, ns, "Warning", tt.reason, tt.message)
			if ev.InvolvedObject.Kind != tt.kind {
				t.Errorf("event %s is about a %s; want %s", ev.Reason, ev.InvolvedObject.Kind, tt.kind)
			}
		})
	}
}

func TestProgressDeadlineExceeded(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	d := deployment("app", 2, map[string]string{sandbox.ScenarioLabel: sandbox.ScenarioNeverReady}, nil)
	deadline := int32(3)
	d.Spec.ProgressDeadlineSeconds = &deadline
	create(t, ns, d)
	poll(t, 40*time.Second, "Progressing=False ProgressDeadlineExceeded", func(ctx context.Context) (bool, error) {
		d, err := cluster.Client().AppsV1().Deployments(ns).Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing {
				return c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded", nil
			}
		}
		return false, nil
	})
}

func TestJobs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		labels map[string]string
		want   batchv1.JobConditionType
	}{
		{"completes", nil, batchv1.JobComplete},
		{"fails", map[string]string{sandbox.ScenarioLabel: sandbox.ScenarioJobFailure}, batchv1.JobFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			c := cluster.Client()
			backoff := int32(0)
			job := &batchv1.Job{
				ObjectMeta: metav1.ObjectMeta{Name: "job"},
				Spec: batchv1.JobSpec{
					BackoffLimit: &backoff,
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: tt.labels},
						Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
							Containers: []corev1.Container{{Name: "task", Image: image}}},
					},
				},
			}
			if _, err := c.BatchV1().Jobs(ns).Create(context.Background(), job, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			poll(t, 40*time.Second, fmt.Sprintf("job condition %s", tt.want), func(ctx context.Context) (bool, error) {
				j, err := c.BatchV1().Jobs(ns).Get(ctx, "job", metav1.GetOptions{})
				if err != nil {
					return false, nil
				}
				for _, cond := range j.Status.Conditions {
					if cond.Type == tt.want && cond.Status == corev1.ConditionTrue {
						return true, nil
					}
				}
				return false, nil
			})
			if tt.want == batchv1.JobFailed {
				pods, err := c.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
				if err != nil || len(pods.Items) == 0 {
					t.Fatalf("listing job pods: %v (%d pods)", err, len(pods.Items))
				}
				p := pods.Items[0]
				st := p.Status.ContainerStatuses
				if p.Status.Phase != corev1.PodFailed || len(st) != 1 || st[0].State.Terminated == nil || st[0].State.Terminated.ExitCode != 1 {
					t.Errorf("failed job pod: phase %s statuses %+v", p.Status.Phase, st)
				}
			}
		})
	}
}
