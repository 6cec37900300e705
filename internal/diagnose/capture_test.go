//go:build capture

// Regenerates testdata from the sandbox (a real control plane, kwok playing the kubelet):
//
//	go test -tags capture -run Capture ./internal/diagnose/
//
// For each case it prepares a namespace (ResourceQuota, LimitRange, Pod Security label...), rolls out a healthy
// v1, applies a v2 (usually broken), waits until the failure signal is in the API, and writes the workload,
// ReplicaSets, pods and events to testdata/<case>/objects.yaml (managedFields stripped) and the rollout start
// and read times to testdata/<case>/case.yaml. The plain `go test` then diagnoses those files.

package diagnose

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/sandbox"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

var cluster *sandbox.Cluster

func TestMain(m *testing.M) { sandbox.Main(m, sandbox.Options{}, &cluster) }

const (
	imageV1 = "registry.example.com/web:1.4.0"
	imageV2 = "registry.example.com/web:1.5.0"
)

// captureCase is one fixture to regenerate.
type captureCase struct {
	dir  string
	kind string // Deployment (default), StatefulSet, DaemonSet
	// prepare runs before v1 exists (quotas, limit ranges, namespace labels).
	prepare func(ctx context.Context, c kubernetes.Interface, ns string) error
	// v1 adjusts the first release's template; v1Broken says v1 is not expected to become healthy and
	// v1Done says when it has settled instead.
	v1       func(*corev1.PodTemplateSpec)
	v1Done   func(s snapshot) bool
	v2       func(*corev1.PodTemplateSpec)
	deadline int32 // progressDeadlineSeconds of the Deployment; 0 = the API default
	// signal says when the objects show what the case is about.
	signal func(s snapshot) bool
	source string // "" (kwok's stages) or "real-node"
}

func TestCapture(t *testing.T) {
	cases := []captureCase{
		{dir: "deployment-healthy", v2: image(imageV2), signal: rolledOut},
		{dir: "deployment-progressing", v2: all(image(imageV2), scenario(sandbox.ScenarioSlowReady), readyAfter("1h"), probe),
			signal: podIs(func(cs corev1.ContainerStatus) bool { return cs.State.Running != nil })},
		{dir: "image-pull-first-error", v2: all(image(imageV2), scenario(sandbox.ScenarioImagePullFailure)),
			signal: both(both(waiting("ErrImagePull"), hasEvent("Pod", "Failed", "Error: ErrImagePull")), not(hasEvent("Pod", "BackOff", "")))},
		{dir: "image-pull-backoff", v2: all(image(imageV2), scenario(sandbox.ScenarioImagePullFailure)),
			signal: both(waiting("ImagePullBackOff"), hasEvent("Pod", "BackOff", "Back-off pulling image"))},
		{dir: "crash-loop", v2: all(image(imageV2), scenario(sandbox.ScenarioCrashLoop)),
			signal: podIs(func(cs corev1.ContainerStatus) bool {
				return cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff" && cs.RestartCount >= 2
			})},
		{dir: "config-error", v2: all(image(imageV2), scenario(sandbox.ScenarioConfigError)),
			signal: both(waiting("CreateContainerConfigError"), hasEvent("Pod", "Failed", "app-config"))},
		{dir: "never-ready", v2: all(image(imageV2), scenario(sandbox.ScenarioNeverReady), probe),
			// The probe allows 5s × 3, plus the default 10s slack: wait past it.
			signal: both(hasEvent("Pod", "Unhealthy", "Readiness probe failed"), podIs(func(cs corev1.ContainerStatus) bool {
				return cs.State.Running != nil && time.Since(cs.State.Running.StartedAt.Time) > 27*time.Second
			}))},
		{dir: "quota-exceeded", prepare: withQuota("pods-max", corev1.ResourceList{corev1.ResourcePods: resource.MustParse("3")}),
			v2: image(imageV2), signal: both(hasEvent("ReplicaSet", "FailedCreate", "exceeded quota"), replicaFailure)},
		{dir: "limitrange-violation", prepare: withLimitRange("500m"),
			v2: all(image(imageV2), cpuLimit("1")), signal: hasEvent("ReplicaSet", "FailedCreate", "maximum cpu usage")},
		{dir: "serviceaccount-missing", v2: all(image(imageV2), func(t *corev1.PodTemplateSpec) { t.Spec.ServiceAccountName = "deployer" }),
			signal: hasEvent("ReplicaSet", "FailedCreate", `serviceaccount "deployer" not found`)},
		{dir: "pod-security", prepare: withPodSecurity("baseline"),
			v2:     all(image(imageV2), func(t *corev1.PodTemplateSpec) { t.Spec.HostNetwork = true }),
			signal: hasEvent("ReplicaSet", "FailedCreate", "violates PodSecurity")},
		{dir: "unschedulable", v2: all(image(imageV2), cpuRequest("8")),
			signal: both(hasEvent("Pod", "FailedScheduling", "Insufficient cpu"), podCondition(corev1.PodScheduled, corev1.ConditionFalse))},
		{dir: "progress-deadline", deadline: 10, v2: all(image(imageV2), scenario(sandbox.ScenarioSlowReady), readyAfter("1h")),
			signal: func(s snapshot) bool {
				d := s.workload.(*appsv1.Deployment)
				for _, c := range d.Status.Conditions {
					if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
						return true
					}
				}
				return false
			}},
		{dir: "old-revision-crash",
			v1:     scenario(sandbox.ScenarioCrashLoop),
			v1Done: podIs(func(cs corev1.ContainerStatus) bool { return cs.RestartCount >= 1 }),
			v2:     all(image(imageV2), scenario(sandbox.ScenarioSlowReady), readyAfter("1h")),
			signal: func(s snapshot) bool {
				var newRunning, oldCrashing bool
				for _, p := range s.pods {
					for _, cs := range p.Status.ContainerStatuses {
						switch p.Labels[sandbox.ScenarioLabel] {
						case sandbox.ScenarioSlowReady:
							newRunning = newRunning || cs.State.Running != nil
						case sandbox.ScenarioCrashLoop:
							oldCrashing = oldCrashing || cs.RestartCount >= 1
						}
					}
				}
				d := s.workload.(*appsv1.Deployment)
				return newRunning && oldCrashing && d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas > 0
			}},
		{dir: "statefulset-healthy", kind: "StatefulSet", v2: image(imageV2), signal: rolledOut},
		{dir: "statefulset-crash-loop", kind: "StatefulSet", v2: all(image(imageV2), scenario(sandbox.ScenarioCrashLoop)),
			signal: podIs(func(cs corev1.ContainerStatus) bool {
				return cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
			})},
		{dir: "statefulset-quota", kind: "StatefulSet",
			prepare: withQuota("compute", corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse("1600m")}),
			v1:      cpuRequest("500m"), v2: all(image(imageV2), cpuRequest("1")),
			signal: hasEvent("StatefulSet", "FailedCreate", "exceeded quota")},
		{dir: "daemonset-healthy", kind: "DaemonSet", v2: image(imageV2), signal: rolledOut},
		{dir: "daemonset-image-pull", kind: "DaemonSet", v2: all(image(imageV2), scenario(sandbox.ScenarioImagePullFailure)),
			signal: both(waiting("ImagePullBackOff"), hasEvent("Pod", "BackOff", "Back-off pulling image"))},
	}
	for _, tc := range cases {
		t.Run(tc.dir, func(t *testing.T) {
			t.Parallel()
			capture(t, cluster, tc)
		})
	}
}

func capture(t *testing.T, cluster *sandbox.Cluster, tc captureCase) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := cluster.Client()
	ns := cluster.Namespace(t)
	if tc.kind == "" {
		tc.kind = "Deployment"
	}
	if tc.prepare != nil {
		if err := tc.prepare(ctx, c, ns); err != nil {
			t.Fatalf("preparing namespace %s: %v", ns, err)
		}
	}
	tmpl := baseTemplate()
	if tc.v1 != nil {
		tc.v1(&tmpl)
	}
	if err := createWorkload(ctx, c, ns, tc, tmpl); err != nil {
		t.Fatalf("creating v1: %v", err)
	}
	v1Done := tc.v1Done
	if v1Done == nil {
		v1Done = rolledOut
	}
	if _, err := waitFor(ctx, c, ns, tc.kind, v1Done); err != nil {
		t.Fatalf("waiting for v1 to settle: %v", err)
	}
	started := time.Now()
	if err := updateTemplate(ctx, c, ns, tc.kind, tc.v2); err != nil {
		t.Fatalf("applying v2: %v", err)
	}
	s, err := waitFor(ctx, c, ns, tc.kind, tc.signal)
	if err != nil {
		t.Fatalf("waiting for the signal of %s: %v", tc.dir, err)
	}
	if err := s.write(filepath.Join("testdata", tc.dir), started, tc.source); err != nil {
		t.Fatal(err)
	}
	t.Logf("captured %s (%d pods, %d events) %s after v2", tc.dir, len(s.pods), len(s.events), s.at.Sub(started).Round(time.Millisecond))
}

// snapshot is everything Diagnose reads, as listed at one moment.
type snapshot struct {
	at       time.Time
	workload runtime.Object
	rss      []appsv1.ReplicaSet
	pods     []corev1.Pod
	events   []corev1.Event
}

func read(ctx context.Context, c kubernetes.Interface, ns, kind string) (snapshot, error) {
	s := snapshot{at: time.Now()}
	var err error
	switch kind {
	case "Deployment":
		s.workload, err = c.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err == nil {
			var l *appsv1.ReplicaSetList
			if l, err = c.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{}); err == nil {
				s.rss = l.Items
			}
		}
	case "StatefulSet":
		s.workload, err = c.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
	case "DaemonSet":
		s.workload, err = c.AppsV1().DaemonSets(ns).Get(ctx, "web", metav1.GetOptions{})
	}
	if err != nil {
		return s, fmt.Errorf("reading %s %s/web: %w", kind, ns, err)
	}
	pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return s, fmt.Errorf("listing pods of %s: %w", ns, err)
	}
	events, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return s, fmt.Errorf("listing events of %s: %w", ns, err)
	}
	s.pods, s.events = pods.Items, events.Items
	return s, nil
}

// waitFor polls quickly: some signals (a lone ErrImagePull) last only a second.
func waitFor(ctx context.Context, c kubernetes.Interface, ns, kind string, cond func(snapshot) bool) (snapshot, error) {
	var s snapshot
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		if s, err = read(ctx, c, ns, kind); err != nil {
			return false, nil // transient; the timeout reports it
		}
		return cond(s), nil
	})
	return s, err
}

// write stores the snapshot as a fixture, in a stable order so recaptures diff well.
// source is "sandbox" (kwok's stages) when empty, or "real-node" (a real kubelet, containerd and runc).
func (s snapshot) write(dir string, started time.Time, source string) error {
	if source == "" {
		source = "sandbox"
	}
	slices.SortFunc(s.rss, func(a, b appsv1.ReplicaSet) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	slices.SortStableFunc(s.events, func(a, b corev1.Event) int { return firstSeen(a).Compare(firstSeen(b)) })
	var docs []string
	add := func(obj runtime.Object, apiVersion, kind string) error {
		acc, err := meta.Accessor(obj)
		if err != nil {
			return err
		}
		acc.SetManagedFields(nil)
		obj.GetObjectKind().SetGroupVersionKind(schema.FromAPIVersionAndKind(apiVersion, kind))
		b, err := yaml.Marshal(obj)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", kind, err)
		}
		docs = append(docs, string(b))
		return nil
	}
	apiVersion, kind := "apps/v1", ""
	switch s.workload.(type) {
	case *appsv1.Deployment:
		kind = "Deployment"
	case *appsv1.StatefulSet:
		kind = "StatefulSet"
	case *appsv1.DaemonSet:
		kind = "DaemonSet"
	case *batchv1.Job:
		apiVersion, kind = "batch/v1", "Job"
	}
	if err := add(s.workload, apiVersion, kind); err != nil {
		return err
	}
	for i := range s.rss {
		if err := add(&s.rss[i], "apps/v1", "ReplicaSet"); err != nil {
			return err
		}
	}
	for i := range s.pods {
		if err := add(&s.pods[i], "v1", "Pod"); err != nil {
			return err
		}
	}
	for i := range s.events {
		if err := add(&s.events[i], "v1", "Event"); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	from := "the sandbox by capture_test.go"
	if source == "real-node" {
		from = "the sandbox's real node (kubelet " + sandbox.KubeVersion + ", containerd " + sandbox.ContainerdVersion +
			", runc " + sandbox.RuncVersion + ") by realcapture_test.go"
	}
	body := "# Captured from " + from + "; regenerate, do not edit.\n" + strings.Join(docs, "---\n")
	if err := os.WriteFile(filepath.Join(dir, "objects.yaml"), []byte(body), 0o644); err != nil {
		return fmt.Errorf("writing fixture: %w", err)
	}
	meta := fmt.Sprintf("source: %s\nstarted: %s\ncaptured: %s\n", source,
		started.UTC().Format(time.RFC3339Nano), s.at.UTC().Format(time.RFC3339Nano))
	if err := os.WriteFile(filepath.Join(dir, "case.yaml"), []byte(meta), 0o644); err != nil {
		return fmt.Errorf("writing fixture: %w", err)
	}
	return nil
}

// --- workloads ---------------------------------------------------------------------------------------

func baseTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "web",
			Image: imageV1,
			Ports: []corev1.ContainerPort{{ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
			},
		}}},
	}
}

func createWorkload(ctx context.Context, c kubernetes.Interface, ns string, tc captureCase, tmpl corev1.PodTemplateSpec) error {
	meta := metav1.ObjectMeta{Name: "web", Namespace: ns, Labels: map[string]string{"app": "web"}}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	var err error
	switch tc.kind {
	case "Deployment":
		d := &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Selector: sel, Template: tmpl}}
		if tc.deadline > 0 {
			d.Spec.ProgressDeadlineSeconds = ptr.To(tc.deadline)
		}
		_, err = c.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	case "StatefulSet":
		s := &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3), Selector: sel, Template: tmpl, ServiceName: "web"}}
		_, err = c.AppsV1().StatefulSets(ns).Create(ctx, s, metav1.CreateOptions{})
	case "DaemonSet":
		d := &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Selector: sel, Template: tmpl}}
		_, err = c.AppsV1().DaemonSets(ns).Create(ctx, d, metav1.CreateOptions{})
	}
	if err != nil {
		return fmt.Errorf("creating %s %s/web: %w", tc.kind, ns, err)
	}
	return nil
}

func updateTemplate(ctx context.Context, c kubernetes.Interface, ns, kind string, mutate func(*corev1.PodTemplateSpec)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		switch kind {
		case "Deployment":
			d, err := c.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			mutate(&d.Spec.Template)
			_, err = c.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
			return err
		case "StatefulSet":
			s, err := c.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			mutate(&s.Spec.Template)
			_, err = c.AppsV1().StatefulSets(ns).Update(ctx, s, metav1.UpdateOptions{})
			return err
		default:
			d, err := c.AppsV1().DaemonSets(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			mutate(&d.Spec.Template)
			_, err = c.AppsV1().DaemonSets(ns).Update(ctx, d, metav1.UpdateOptions{})
			return err
		}
	})
}

// --- template changes --------------------------------------------------------------------------------

func all(fs ...func(*corev1.PodTemplateSpec)) func(*corev1.PodTemplateSpec) {
	return func(t *corev1.PodTemplateSpec) {
		for _, f := range fs {
			f(t)
		}
	}
}

func image(ref string) func(*corev1.PodTemplateSpec) {
	return func(t *corev1.PodTemplateSpec) { t.Spec.Containers[0].Image = ref }
}

func scenario(name string) func(*corev1.PodTemplateSpec) {
	return func(t *corev1.PodTemplateSpec) { t.Labels[sandbox.ScenarioLabel] = name }
}

func readyAfter(d string) func(*corev1.PodTemplateSpec) {
	return func(t *corev1.PodTemplateSpec) {
		if t.Annotations == nil {
			t.Annotations = map[string]string{}
		}
		t.Annotations[sandbox.ReadyAfterAnnotation] = d
	}
}

// probe is the readiness probe the never-ready and slow-start cases carry: 5s × 3 failures.
func probe(t *corev1.PodTemplateSpec) {
	t.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 5, FailureThreshold: 3,
	}
}

func cpuRequest(q string) func(*corev1.PodTemplateSpec) {
	return func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse(q)
	}
}

func cpuLimit(q string) func(*corev1.PodTemplateSpec) {
	return func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU] = resource.MustParse(q)
	}
}

// --- namespace preparation ---------------------------------------------------------------------------

// withQuota creates a ResourceQuota and waits until the quota controller has computed its status: until then
// admission refuses every pod with "status unknown for quota".
func withQuota(name string, hard corev1.ResourceList) func(context.Context, kubernetes.Interface, string) error {
	return func(ctx context.Context, c kubernetes.Interface, ns string) error {
		q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ResourceQuotaSpec{Hard: hard}}
		if _, err := c.CoreV1().ResourceQuotas(ns).Create(ctx, q, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating quota: %w", err)
		}
		return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			got, err := c.CoreV1().ResourceQuotas(ns).Get(ctx, name, metav1.GetOptions{})
			return err == nil && len(got.Status.Hard) > 0, nil
		})
	}
}

func withLimitRange(maxCPU string) func(context.Context, kubernetes.Interface, string) error {
	return func(ctx context.Context, c kubernetes.Interface, ns string) error {
		lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "limits"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type: corev1.LimitTypeContainer, Max: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(maxCPU)},
		}}}}
		if _, err := c.CoreV1().LimitRanges(ns).Create(ctx, lr, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating limit range: %w", err)
		}
		return nil
	}
}

func withPodSecurity(level string) func(context.Context, kubernetes.Interface, string) error {
	return func(ctx context.Context, c kubernetes.Interface, ns string) error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if n.Labels == nil {
				n.Labels = map[string]string{}
			}
			n.Labels["pod-security.kubernetes.io/enforce"] = level
			_, err = c.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{})
			return err
		})
	}
}

// --- signals -----------------------------------------------------------------------------------------

func both(a, b func(snapshot) bool) func(snapshot) bool {
	return func(s snapshot) bool { return a(s) && b(s) }
}

func not(f func(snapshot) bool) func(snapshot) bool { return func(s snapshot) bool { return !f(s) } }

// rolledOut is the kubectl rollout status test, as Diagnose implements it.
func rolledOut(s snapshot) bool {
	return Diagnose(Input{Now: s.at, Workload: s.workload, ReplicaSets: s.rss, Pods: s.pods}, DefaultThresholds()).Status == Healthy
}

func podIs(f func(corev1.ContainerStatus) bool) func(snapshot) bool {
	return func(s snapshot) bool {
		for _, p := range s.pods {
			for _, cs := range p.Status.ContainerStatuses {
				if f(cs) {
					return true
				}
			}
		}
		return false
	}
}

func waiting(reason string) func(snapshot) bool {
	return podIs(func(cs corev1.ContainerStatus) bool {
		return cs.State.Waiting != nil && cs.State.Waiting.Reason == reason
	})
}

func podCondition(typ corev1.PodConditionType, status corev1.ConditionStatus) func(snapshot) bool {
	return func(s snapshot) bool {
		for _, p := range s.pods {
			for _, c := range p.Status.Conditions {
				if c.Type == typ && c.Status == status {
					return true
				}
			}
		}
		return false
	}
}

func hasEvent(kind, reason, text string) func(snapshot) bool {
	return func(s snapshot) bool {
		for _, e := range s.events {
			if e.InvolvedObject.Kind == kind && e.Reason == reason && strings.Contains(e.Message, text) {
				return true
			}
		}
		return false
	}
}

func replicaFailure(s snapshot) bool {
	for _, rs := range s.rss {
		for _, c := range rs.Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue {
				return true
			}
		}
	}
	return false
}
