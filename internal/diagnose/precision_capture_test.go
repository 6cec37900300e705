//go:build capture

// Fixtures for issue #10's precision rules, captured like capture_test.go's:
//
//	go test -tags capture -run CapturePrecision ./internal/diagnose/

package diagnose

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rollguard/rollguard/sandbox"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestCapturePrecision(t *testing.T) {
	cases := []captureCase{
		{dir: "pull-blip-first-error", v2: all(image(imageV2), scenario(sandbox.ScenarioPullBlip), annotate(sandbox.PullRecoversAfterAnnotation, "1h")),
			signal: both(waiting("ErrImagePull"), not(hasEvent("Pod", "BackOff", "")))},
		{dir: "pull-blip-backoff", v2: all(image(imageV2), scenario(sandbox.ScenarioPullBlip), annotate(sandbox.PullRecoversAfterAnnotation, "1h")),
			signal: both(waiting("ImagePullBackOff"), hasEvent("Pod", "BackOff", "Back-off pulling image"))},
		{dir: "restart-once", v2: all(image(imageV2), scenario(sandbox.ScenarioRestartOnce), probe),
			signal: podIs(func(cs corev1.ContainerStatus) bool {
				return cs.RestartCount == 1 && cs.State.Running != nil && !cs.Ready
			})},
		{dir: "evicted", v2: all(image(imageV2), scenario(sandbox.ScenarioEvicted), evictWithin(2*time.Second)),
			signal: func(s snapshot) bool {
				for _, p := range s.pods {
					if p.Status.Reason == "Evicted" {
						return true
					}
				}
				return false
			}},
		{dir: "slow-start-history", v1: all(scenario(sandbox.ScenarioSlowReady), readyAfter("4s"), probe),
			v2: all(image(imageV2), scenario(sandbox.ScenarioSlowReady), readyAfter("1h"), probe),
			signal: podIs(func(cs corev1.ContainerStatus) bool {
				return cs.Image == imageV2 && cs.State.Running != nil && time.Since(cs.State.Running.StartedAt.Time) > 2*time.Second
			})},
		{dir: "limitrange-default-invalid", prepare: withDefaultCPULimit("100m"), v2: all(image(imageV2), cpuRequest("200m")),
			signal: hasEvent("ReplicaSet", "FailedCreate", "is invalid")},
		{dir: "admission-policy", prepare: withDenyingPolicy(":1.5.0"), v2: image(imageV2),
			signal: hasEvent("ReplicaSet", "FailedCreate", "ValidatingAdmissionPolicy")},
	}
	for _, tc := range cases {
		t.Run(tc.dir, func(t *testing.T) {
			t.Parallel()
			capture(t, cluster, tc)
		})
	}
}

func annotate(k, v string) func(*corev1.PodTemplateSpec) {
	return func(t *corev1.PodTemplateSpec) {
		if t.Annotations == nil {
			t.Annotations = map[string]string{}
		}
		t.Annotations[k] = v
	}
}

// evictWithin evicts the pods created within d of applying v2 (the template change runs at apply time).
func evictWithin(d time.Duration) func(*corev1.PodTemplateSpec) {
	return func(t *corev1.PodTemplateSpec) {
		annotate(sandbox.EvictBeforeAnnotation, time.Now().Add(d).UTC().Format(time.RFC3339))(t)
	}
}

func withDefaultCPULimit(cpu string) func(context.Context, kubernetes.Interface, string) error {
	return func(ctx context.Context, c kubernetes.Interface, ns string) error {
		lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "defaults"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type: corev1.LimitTypeContainer, Default: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)},
		}}}}
		if _, err := c.CoreV1().LimitRanges(ns).Create(ctx, lr, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating limit range: %w", err)
		}
		return nil
	}
}

// withDenyingPolicy binds to ns a ValidatingAdmissionPolicy denying pods whose image ends with suffix. The
// policy is left for the sandbox to discard with the cluster.
func withDenyingPolicy(suffix string) func(context.Context, kubernetes.Interface, string) error {
	return func(ctx context.Context, c kubernetes.Interface, ns string) error {
		_, err := sandbox.DenyPods(ctx, c, ns, suffix, "images "+suffix+" are blocked by the release policy")
		return err
	}
}
