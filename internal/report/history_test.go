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

// A history must never carry the previous state a record keeps for restoring, Secrets above all.
func TestHistoryJSONHasNoObjectBodies(t *testing.T) {
	secret := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata":   map[string]any{"name": "db", "namespace": "prod", "annotations": map[string]any{"note": "annotation-canary"}},
		"data":       map[string]any{"password": "c2VjcmV0LWNhbmFyeQ=="},
		"stringData": map[string]any{"token": "plain-canary"},
	}}
	r := &release.Record{ID: "web.v1", App: "web", Namespace: "prod", Revision: 1, Outcome: release.Succeeded,
		CreatedAt: time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC),
		Workloads: []release.WorkloadState{{Kind: "Deployment", Name: "web", Images: []string{"web:1"}, NewRevision: 1, NewTemplateHash: "h1"}}}
	var web1 corev1.PodTemplateSpec
	web1.Spec.Containers = []corev1.Container{{Name: "web", Image: "web:1"}}
	r.Objects = []release.ObjectState{
		{APIVersion: "v1", Kind: "Secret", Namespace: "prod", Name: "db", Existed: true, Previous: secret},
		{APIVersion: "v1", Kind: "ConfigMap", Namespace: "prod", Name: "cfg"},
	}
	for name, res := range map[string]*history.Result{
		"app":      history.App("prod", "web", []*release.Record{r}),
		"workload": history.Workload("prod", "Deployment", "web", 1, []revision.Revision{{Number: 1, Template: web1, Hash: "h1"}}, []*release.Record{r}),
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
