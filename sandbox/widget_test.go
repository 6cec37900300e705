package sandbox_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/rollguard/rollguard/sandbox"
)

// TestWidgetController: kwok writes a Widget's status as its controller would: observedGeneration, Ready
// after spec.readyAfter (Ready=False with spec.notReadyReason before), Stalled with spec.failWith.
func TestWidgetController(t *testing.T) {
	t.Parallel()
	dyn, err := dynamic.NewForConfig(cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		spec map[string]any
		want string // the condition that ends True
	}{
		{"ready", map[string]any{"readyAfter": "1s", "notReadyReason": "SecretSyncedError"}, "Ready"},
		{"stalled", map[string]any{"failWith": "size 1 is below the minimum of 3"}, "Stalled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			ws := dyn.Resource(sandbox.WidgetGVR).Namespace(ns)
			w := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "sandbox.rollguard.dev/v1", "kind": "Widget",
				"metadata": map[string]any{"name": "w"}, "spec": tc.spec}}
			if _, err := ws.Create(context.Background(), w, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			poll(t, 30*time.Second, "widget condition "+tc.want, func(ctx context.Context) (bool, error) {
				got, err := ws.Get(ctx, "w", metav1.GetOptions{})
				if err != nil {
					return false, nil
				}
				gen, _, _ := unstructured.NestedInt64(got.Object, "status", "observedGeneration")
				conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
				for _, c := range conds {
					m, _ := c.(map[string]any)
					if m["type"] == tc.want && m["status"] == "True" {
						return gen == got.GetGeneration(), nil
					}
				}
				return false, nil
			})
		})
	}
}
