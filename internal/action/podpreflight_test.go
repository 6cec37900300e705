package action

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// A full quota blocks only rollouts that must add a pod before removing one.
func TestSurgesFirst(t *testing.T) {
	rolling := func(replicas int32, surge, unavailable intstr.IntOrString) *appsv1.Deployment {
		return &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Strategy: appsv1.DeploymentStrategy{
			Type:          appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
		}}}
	}
	tests := []struct {
		name string
		d    *appsv1.Deployment
		want bool
	}{
		{"defaults on 3 replicas (25% → surge 1, unavailable 0)", rolling(3, intstr.FromString("25%"), intstr.FromString("25%")), true},
		{"defaults on 4 replicas (unavailable 1 frees a pod first)", rolling(4, intstr.FromString("25%"), intstr.FromString("25%")), false},
		{"maxSurge 0 replaces in place", rolling(3, intstr.FromInt32(0), intstr.FromInt32(1)), false},
		{"Recreate", &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}}, false},
	}
	for _, tc := range tests {
		if got := surgesFirst(tc.d); got != tc.want {
			t.Errorf("%s: surgesFirst = %t, want %t", tc.name, got, tc.want)
		}
	}
}

func TestPodOf(t *testing.T) {
	var u unstructured.Unstructured
	doc := `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata:
      labels: {app: web}
      annotations: {a: b}
    spec:
      serviceAccountName: web
      containers: [{name: web, image: "r.example.com/web:2"}]
`
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	p, err := podOf(&u)
	if err != nil {
		t.Fatal(err)
	}
	if p.Namespace != "shop" || p.GenerateName != "web-rollguard-preflight-" || p.Labels["app"] != "web" || p.Annotations["a"] != "b" ||
		p.Spec.ServiceAccountName != "web" || p.Spec.Containers[0].Image != "r.example.com/web:2" {
		t.Errorf("pod = %+v", p)
	}
	delete(u.Object, "spec")
	if _, err := podOf(&u); err == nil {
		t.Error("a workload without a template gave a pod")
	}
}
