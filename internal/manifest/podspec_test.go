package manifest

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Where the pod template is depends on the kind and its API group: a custom resource that happens to be
// named Deployment (or CronJob, or Pod) is not the built-in kind and has no pod template rollguard knows.
func TestPodSpecPath(t *testing.T) {
	template := []string{"spec", "template", "spec"}
	for _, tc := range []struct {
		gk   schema.GroupKind
		want []string
	}{
		{schema.GroupKind{Group: "apps", Kind: "Deployment"}, template},
		{schema.GroupKind{Group: "apps", Kind: "StatefulSet"}, template},
		{schema.GroupKind{Group: "apps", Kind: "DaemonSet"}, template},
		{schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}, template},
		{schema.GroupKind{Group: "batch", Kind: "Job"}, template},
		{schema.GroupKind{Kind: "ReplicationController"}, template},
		{schema.GroupKind{Group: "batch", Kind: "CronJob"}, []string{"spec", "jobTemplate", "spec", "template", "spec"}},
		{schema.GroupKind{Kind: "PodTemplate"}, []string{"template", "spec"}},
		{schema.GroupKind{Kind: "Pod"}, []string{"spec"}},
		{schema.GroupKind{Kind: "ConfigMap"}, nil},
		{schema.GroupKind{Group: "example.com", Kind: "Deployment"}, nil},
		{schema.GroupKind{Group: "example.com", Kind: "CronJob"}, nil},
		{schema.GroupKind{Group: "example.com", Kind: "Pod"}, nil},
		{schema.GroupKind{Kind: "Deployment"}, nil}, // the core group has no Deployment
		{schema.GroupKind{Group: "extensions", Kind: "Deployment"}, nil},
	} {
		if got := PodSpecPath(tc.gk); !slices.Equal(got, tc.want) {
			t.Errorf("PodSpecPath(%s) = %v, want %v", tc.gk, got, tc.want)
		}
	}
}

func TestPodSpec(t *testing.T) {
	obj := func(apiVersion, kind string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": "web"},
			"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "web", "image": "web:1"}}}}}}}
	}
	spec, found, err := PodSpec(obj("apps/v1", "Deployment"))
	if err != nil || !found || len(spec.Containers) != 1 || spec.Containers[0].Image != "web:1" {
		t.Errorf("Deployment: %+v, %v, %v", spec, found, err)
	}
	if spec, found, err := PodSpec(obj("example.com/v1", "Deployment")); found || err != nil || len(spec.Containers) != 0 {
		t.Errorf("a custom resource named Deployment was read as one: %+v, %v, %v", spec, found, err)
	}
	bad := obj("apps/v1", "Deployment")
	bad.Object["spec"] = map[string]any{"template": map[string]any{"spec": map[string]any{"containers": "web"}}}
	if _, found, err := PodSpec(bad); !found || err == nil {
		t.Errorf("a malformed template: found %v, err %v; want an error", found, err)
	}
}
