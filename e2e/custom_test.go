package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// widgetCRD is a custom resource type with a status subresource; the test plays its controller.
const widgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.e2e.rollguard.dev
spec:
  group: e2e.rollguard.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`

var widgets = schema.GroupVersionResource{Group: "e2e.rollguard.dev", Version: "v1", Resource: "widgets"}

func widget(name string, annotations string) string {
	return "apiVersion: e2e.rollguard.dev/v1\nkind: Widget\nmetadata:\n  name: " + name + "\n" + annotations + "spec:\n  size: 1\n"
}

// TestCustomResourcesFollowed: a custom resource in a release is followed the kstatus way. One its
// controller marks Ready is healthy; one it marks Stalled fails the release with the controller's words;
// one annotated rollguard.dev/track: "false" is not waited for.
func TestCustomResourcesFollowed(t *testing.T) {
	t.Parallel()
	crdNS := cluster.Namespace(t)
	if r := rollguard(t, widgetCRD, "deploy", "-f", "-", "-n", crdNS, "--app", "widget-crd", "--timeout", "1m"); r.code != 0 {
		t.Fatalf("CRD: exit %d\n%s", r.code, r.stderr)
	}
	dyn, err := dynamic.NewForConfig(cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, annotations string
		// conditions is what the "controller" writes once the widget exists; nil writes nothing.
		conditions []any
		code       int
		status     string
		reason     string
	}{
		{name: "turns ready", conditions: []any{map[string]any{"type": "Ready", "status": "True", "reason": "Provisioned", "message": "widget is up"}},
			code: 0, status: "healthy"},
		{name: "stalls", conditions: []any{map[string]any{"type": "Stalled", "status": "True", "reason": "InvalidSpec", "message": "size 1 is below the minimum of 3"}},
			code: 2, status: "failed", reason: "CustomResourceFailed"},
		{name: "untracked", annotations: "  annotations:\n    rollguard.dev/track: \"false\"\n", code: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			wait := startRollguardEnv(t, []string{"KUBECONFIG=" + cluster.Kubeconfig}, app{}.yaml()+"---\n"+widget("w", tc.annotations),
				"deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "2m", "--on-failure", "none")
			if tc.conditions != nil {
				setStatus(t, dyn.Resource(widgets).Namespace(ns), "w", tc.conditions)
			}
			r := wait()
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", r.code, tc.code, r.stdout, r.stderr)
			}
			var found bool
			for _, w := range parseReport(t, r).Workloads {
				if w.Kind != "Widget" {
					continue
				}
				found = true
				if w.Status != tc.status || w.Reason != tc.reason {
					t.Fatalf("Widget: %s %s (%s), want %s %s", w.Status, w.Reason, w.Message, tc.status, tc.reason)
				}
				if tc.reason != "" && !strings.Contains(w.Message, "size 1 is below the minimum of 3") {
					t.Errorf("message %q lacks the controller's words", w.Message)
				}
			}
			if found != (tc.status != "") {
				t.Errorf("Widget in the report: %t, want %t", found, tc.status != "")
			}
		})
	}
}

// setStatus plays the widget's controller: once the widget exists, it writes its status conditions.
func setStatus(t *testing.T, res dynamic.ResourceInterface, name string, conditions []any) {
	t.Helper()
	ctx := context.Background()
	var u *unstructured.Unstructured
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		u, err = res.Get(ctx, name, metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("widget %s never appeared", name)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	for _, c := range conditions {
		c.(map[string]any)["lastTransitionTime"] = now
		c.(map[string]any)["observedGeneration"] = u.GetGeneration()
	}
	patch, _ := (&unstructured.Unstructured{Object: map[string]any{"status": map[string]any{
		"observedGeneration": u.GetGeneration(), "conditions": conditions}}}).MarshalJSON()
	if _, err := res.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
}
