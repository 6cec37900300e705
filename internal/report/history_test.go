package report_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rollguard/rollguard/internal/history"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/revision"
)

var t0 = time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)

func record(rev int, outcome release.Outcome, newRev int64, prevHash, newHash string, images ...string) *release.Record {
	return &release.Record{
		ID: release.ID("web", rev), App: "web", Namespace: "prod", Revision: rev, Outcome: outcome,
		CreatedAt: t0.Add(time.Duration(rev) * time.Minute), DeployedBy: "ci (GitHub Actions: alice)",
		Timings: release.Timings{RollbackStartedAt: t0.Add(time.Duration(rev)*time.Minute + 30*time.Second)},
		Workloads: []release.WorkloadState{{Kind: "Deployment", Name: "web", Images: images, NewRevision: newRev,
			PreviousTemplateHash: prevHash, NewTemplateHash: newHash}},
	}
}

// template is a pod template running images.
func template(images ...string) corev1.PodTemplateSpec {
	var t corev1.PodTemplateSpec
	for _, image := range images {
		t.Spec.Containers = append(t.Spec.Containers, corev1.Container{Name: "c", Image: image})
	}
	return t
}

// A history must never carry the previous state a record keeps for restoring, Secrets above all.
func TestHistoryJSONHasNoObjectBodies(t *testing.T) {
	secret := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata":   map[string]any{"name": "db", "namespace": "prod", "annotations": map[string]any{"note": "annotation-canary"}},
		"data":       map[string]any{"password": "c2VjcmV0LWNhbmFyeQ=="},
		"stringData": map[string]any{"token": "plain-canary"},
	}}
	r := record(1, release.Succeeded, 1, "", "h1", "web:1")
	r.Objects = []release.ObjectState{
		{APIVersion: "v1", Kind: "Secret", Namespace: "prod", Name: "db", Existed: true, Previous: secret},
		{APIVersion: "v1", Kind: "ConfigMap", Namespace: "prod", Name: "cfg"},
	}
	for name, res := range map[string]*history.Result{
		"app":      history.App("prod", "web", []*release.Record{r}),
		"workload": history.Workload("prod", "Deployment", "web", 1, []revision.Revision{{Number: 1, Template: template("web:1"), Hash: "h1"}}, []*release.Record{r}),
	} {
		for format, write := range map[string]func(*bytes.Buffer) error{
			"json": func(b *bytes.Buffer) error { return report.WriteJSON(b, res, "the history") },
			"text": func(b *bytes.Buffer) error { return report.HistoryText(b, res) },
		} {
			var b bytes.Buffer
			if err := write(&b); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			for _, leak := range []string{"c2VjcmV0LWNhbmFyeQ==", "plain-canary", "annotation-canary", `"data"`, `"previous"`, "password"} {
				if strings.Contains(out, leak) {
					t.Errorf("%s history -o %s leaks %q:\n%s", name, format, leak, out)
				}
			}
			if format == "json" && (!strings.Contains(out, `"name": "db"`) || !strings.Contains(out, `"kind": "Secret"`)) {
				t.Errorf("%s history -o json does not name the objects:\n%s", name, out)
			}
		}
	}
}
