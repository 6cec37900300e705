package e2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rollguard/rollguard/sandbox"
)

// Namespace set-ups that make the API server refuse pods at admission.

func resourceMust(q string) resource.Quantity { return resource.MustParse(q) }

// limitRangeDefault gives containers without a cpu limit the limit cpu (and a request of a tenth of it).
func limitRangeDefault(cpu string) func(t *testing.T, ns string) {
	return func(t *testing.T, ns string) {
		q := resource.MustParse(cpu)
		req := resource.NewMilliQuantity(q.MilliValue()/10, resource.DecimalSI)
		lr := &corev1.LimitRange{
			ObjectMeta: metav1.ObjectMeta{Name: "defaults"},
			Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
				Type:           corev1.LimitTypeContainer,
				Default:        corev1.ResourceList{corev1.ResourceCPU: q},
				DefaultRequest: corev1.ResourceList{corev1.ResourceCPU: *req},
			}}},
		}
		if _, err := cluster.Client().CoreV1().LimitRanges(ns).Create(context.Background(), lr, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// podQuota limits the namespace to n pods and waits until the quota controller has computed its usage
// (until then admission refuses every pod).
func podQuota(n int) func(t *testing.T, ns string) {
	return func(t *testing.T, ns string) {
		ctx := context.Background()
		q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "pods"},
			Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(int64(n), resource.DecimalSI)}}}
		if _, err := cluster.Client().CoreV1().ResourceQuotas(ns).Create(ctx, q, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			got, err := cluster.Client().CoreV1().ResourceQuotas(ns).Get(ctx, "pods", metav1.GetOptions{})
			return err == nil && len(got.Status.Hard) > 0, nil
		})
		if err != nil {
			t.Fatal("quota status never computed")
		}
	}
}

// podSecurity enforces a Pod Security level on the namespace.
func podSecurity(level string) func(t *testing.T, ns string) {
	return func(t *testing.T, ns string) {
		ctx := context.Background()
		n, err := cluster.Client().CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels["pod-security.kubernetes.io/enforce"] = level
		if _, err := cluster.Client().CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// denyImagePolicy binds, to this namespace only, a ValidatingAdmissionPolicy that denies pods whose image
// ends with suffix.
func denyImagePolicy(suffix string) func(t *testing.T, ns string) {
	return func(t *testing.T, ns string) {
		remove, err := sandbox.DenyPods(context.Background(), cluster.Client(), ns, suffix, "release 2.0.0 is blocked")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(remove)
	}
}
