package guard

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestGuarded(t *testing.T) {
	on := map[string]string{NamespaceLabel: "enabled"}
	tests := []struct {
		name        string
		ns, annots  map[string]string
		wantGuarded bool
	}{
		{"labelled namespace", on, nil, true},
		{"unlabelled namespace", nil, nil, false},
		{"namespace label other value", map[string]string{NamespaceLabel: "true"}, nil, false},
		{"workload opts in", nil, map[string]string{GuardAnnotation: "enabled"}, true},
		{"workload opts out of a guarded namespace", on, map[string]string{GuardAnnotation: "disabled"}, false},
	}
	for _, tt := range tests {
		if got := Guarded(tt.ns, tt.annots); got != tt.wantGuarded {
			t.Errorf("%s: Guarded = %v, want %v", tt.name, got, tt.wantGuarded)
		}
	}
}

func TestPolicyFor(t *testing.T) {
	p, err := PolicyFor("web", nil)
	if err != nil || p.App != "web" || p.OnFailure != OnFailureRollback || p.Timeout != DefaultTimeout {
		t.Fatalf("defaults: %+v, %v", p, err)
	}
	p, err = PolicyFor("web", map[string]string{
		OnFailureAnnotation: "hold", AppAnnotation: "shop", TimeoutAnnotation: "90s",
		ImagePullGraceAnnotation: "5s", CrashLoopRestartsAnnotation: "7",
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.App != "shop" || p.OnFailure != OnFailureHold || p.Timeout != 90*time.Second || p.Thresholds.ImagePullGrace != 5*time.Second || p.Thresholds.CrashLoopRestarts != 7 {
		t.Fatalf("annotations not read: %+v", p)
	}
	for _, bad := range []map[string]string{
		{OnFailureAnnotation: "approve"},
		{TimeoutAnnotation: "0s"},
		{QuotaGraceAnnotation: "soon"},
		{CrashLoopRestartsAnnotation: "0"},
	} {
		if _, err := PolicyFor("web", bad); err == nil || !strings.Contains(err.Error(), "annotation rollguard.dev/") {
			t.Errorf("%v: err = %v, want one naming the annotation", bad, err)
		}
	}
}

func TestRestoreTarget(t *testing.T) {
	revs := []revision{{Hash: "a", Number: 1}, {Hash: "b", Number: 2}, {Hash: "c", Number: 3}}
	for _, tt := range []struct{ current, baseline, want string }{
		{"c", "a", "a"}, // the last template seen healthy, though older
		{"c", "", "b"},  // unknown baseline: the newest other revision, as undo picks
		{"c", "gone", "b"},
		{"b", "b", "c"},
	} {
		got, ok := restoreTarget(revs, tt.current, tt.baseline)
		if !ok || got.Hash != tt.want {
			t.Errorf("restoreTarget(current %s, baseline %s) = %s, want %s", tt.current, tt.baseline, got.Hash, tt.want)
		}
	}
	if _, ok := restoreTarget(revs[:1], "a", ""); ok {
		t.Error("a workload with one revision has nothing to return to")
	}
}

func TestCurrentHashWaitsForTheController(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: 3, Annotations: map[string]string{"deployment.kubernetes.io/revision": "2"}}}
	revs := []revision{{Hash: "a", Number: 1}, {Hash: "b", Number: 2}}
	d.Status.ObservedGeneration = 2
	if h := currentHash(d, revs); h != "" {
		t.Errorf("controller behind the spec: hash %q, want none yet", h)
	}
	d.Status.ObservedGeneration = 3
	if h := currentHash(d, revs); h != "b" {
		t.Errorf("hash %q, want b", h)
	}
}

func TestChangedBy(t *testing.T) {
	at := func(s int) *metav1.Time { t := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, s, 0, time.UTC)); return &t }
	fields := func(s string) *metav1.FieldsV1 { return &metav1.FieldsV1{Raw: []byte(s)} }
	live := &unstructured.Unstructured{}
	live.SetManagedFields([]metav1.ManagedFieldsEntry{
		{Manager: "argocd-controller", Time: at(1), FieldsV1: fields(`{"f:spec":{"f:template":{}}}`)},
		{Manager: "kubectl-set", Time: at(5), FieldsV1: fields(`{"f:spec":{"f:template":{"f:spec":{}}}}`)},
		{Manager: "kube-controller-manager", Time: at(9), FieldsV1: fields(`{"f:status":{},"f:spec":{"f:template":{}}}`)},
		{Manager: "hpa", Time: at(8), FieldsV1: fields(`{"f:spec":{"f:replicas":{}}}`)},
	})
	by, when := changedBy(live, nil)
	if by != "kubectl-set" || !when.Equal(at(5).Time) {
		t.Errorf("changedBy = %s at %s, want kubectl-set at :05", by, when)
	}

	// Within one second the times tie; the owner of the changed image decides.
	live = &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"containers": []any{map[string]any{"name": "web", "image": "web:2"}}}}}}}
	live.SetManagedFields([]metav1.ManagedFieldsEntry{
		{Manager: "kubectl-client-side-apply", Time: at(5), FieldsV1: fields(`{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{"f:name":{}}}}}}}`)},
		{Manager: "kubectl-set", Time: at(5), FieldsV1: fields(`{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{"f:image":{}}}}}}}`)},
	})
	prev := &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}}}
	if by, _ := changedBy(live, prev); by != "kubectl-set" {
		t.Errorf("changedBy = %s, want kubectl-set, the new owner of the image", by)
	}
}
