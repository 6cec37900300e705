//go:build capture

// Regenerates the real-* fixtures on the sandbox's real node (a real kubelet, containerd and runc; needs root):
//
//	go test -tags capture -run CaptureRealNode ./internal/diagnose/
//
// The same machinery as capture_test.go, on pods that run the test app (sandbox/images/testapp).

package diagnose

import (
	"context"
	"testing"
	"time"

	"github.com/rollguard/rollguard/sandbox"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// realCrashLine is what the crash-loop case's app prints before it exits 1.
const realCrashLine = "fatal: cannot reach database db:5432: connection refused"

func TestCaptureRealNode(t *testing.T) {
	if err := sandbox.RealNodeSupported(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	rc, err := sandbox.Start(ctx, sandbox.Options{RealNode: true, Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Stop() }) // after the parallel cases
	v1, err := rc.PushTestApp(ctx, "1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := rc.PushTestApp(ctx, "1.5.0")
	if err != nil {
		t.Fatal(err)
	}
	// No CPU request: the real node has the machine's 2 cores, and the cases run side by side.
	onReal := all(image(v1), func(t *corev1.PodTemplateSpec) {
		t.Spec.NodeSelector = sandbox.RealNodeSelector()
		delete(t.Spec.Containers[0].Resources.Requests, corev1.ResourceCPU)
	})
	cases := []captureCase{
		{dir: "real-deployment-healthy", v2: image(v2), signal: rolledOut},
		{dir: "real-image-pull-backoff", v2: image(rc.ImageRef(sandbox.TestApp, "1.5.0-missing")),
			signal: both(waiting("ImagePullBackOff"), hasEvent("Pod", "BackOff", "Back-off pulling image"))},
		{dir: "real-crash-loop", v2: all(image(v2), env("CRASH_AT_START", realCrashLine)),
			signal: podIs(func(cs corev1.ContainerStatus) bool {
				return cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff" && cs.RestartCount >= 2
			})},
		{dir: "real-never-ready", v2: all(image(v2), env("NEVER_READY", "1"), probe),
			signal: both(hasEvent("Pod", "Unhealthy", "Readiness probe failed"), podIs(func(cs corev1.ContainerStatus) bool {
				return cs.State.Running != nil && time.Since(cs.State.Running.StartedAt.Time) > 27*time.Second
			}))},
		{dir: "real-config-missing-key", prepare: withConfigMap("web-config", map[string]string{"greeting": "hello"}),
			v2:     all(image(v2), envFromKey("DATABASE_URL", "web-config", "database-url")),
			signal: both(waiting("CreateContainerConfigError"), hasEvent("Pod", "Failed", "database-url"))},
		{dir: "real-crash-oomkilled", v2: all(image(v2), env("ALLOCATE_MB_PER_S", "200"), env("READY_AFTER", "30s"), memoryLimit("48Mi")),
			signal: podIs(func(cs corev1.ContainerStatus) bool {
				return cs.RestartCount >= 3 && cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.Reason == "OOMKilled"
			})},
	}
	for _, tc := range cases {
		tc.v1, tc.source = onReal, "real-node"
		t.Run(tc.dir, func(t *testing.T) {
			t.Parallel()
			capture(t, rc, tc)
		})
	}
}

func env(name, value string) func(*corev1.PodTemplateSpec) {
	return func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].Env = append(t.Spec.Containers[0].Env, corev1.EnvVar{Name: name, Value: value})
	}
}

func envFromKey(name, configMap, key string) func(*corev1.PodTemplateSpec) {
	return func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].Env = append(t.Spec.Containers[0].Env, corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
			ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: configMap}, Key: key}}})
	}
}

func memoryLimit(q string) func(*corev1.PodTemplateSpec) {
	return func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].Resources.Requests[corev1.ResourceMemory] = resource.MustParse(q)
		t.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory] = resource.MustParse(q)
	}
}

func withConfigMap(name string, data map[string]string) func(context.Context, kubernetes.Interface, string) error {
	return func(ctx context.Context, c kubernetes.Interface, ns string) error {
		_, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{})
		return err
	}
}
