package action

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rollguard/rollguard/internal/release"
)

var t0 = time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)

func rec(rev int, outcome release.Outcome, newRev int64, prevHash, newHash string, images ...string) *release.Record {
	return &release.Record{
		ID: release.ID("web", rev), App: "web", Namespace: "prod", Revision: rev, Outcome: outcome,
		CreatedAt: t0.Add(time.Duration(rev) * time.Minute), DeployedBy: "ci (GitHub Actions: alice)",
		Timings: release.Timings{RollbackStartedAt: t0.Add(time.Duration(rev)*time.Minute + 30*time.Second)},
		Workloads: []release.WorkloadState{{Kind: "Deployment", Name: "web", Images: images, NewRevision: newRev,
			PreviousTemplateHash: prevHash, NewTemplateHash: newHash}},
	}
}

// A history must never carry the previous state a record keeps for restoring, Secrets above all.
func TestHistoryJSONHasNoObjectBodies(t *testing.T) {
	secret := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata":   map[string]any{"name": "db", "namespace": "prod", "annotations": map[string]any{"note": "annotation-canary"}},
		"data":       map[string]any{"password": "c2VjcmV0LWNhbmFyeQ=="},
		"stringData": map[string]any{"token": "plain-canary"},
	}}
	r := rec(1, release.Succeeded, 1, "", "h1", "web:1")
	r.Objects = []release.ObjectState{
		{APIVersion: "v1", Kind: "Secret", Namespace: "prod", Name: "db", Existed: true, Previous: secret},
		{APIVersion: "v1", Kind: "ConfigMap", Namespace: "prod", Name: "cfg"},
	}
	for name, res := range map[string]*HistoryResult{
		"app":      AppHistory("prod", "web", []*release.Record{r}),
		"workload": WorkloadHistory("prod", "Deployment", "web", 1, []WorkloadRevision{{Number: 1, Images: []string{"web:1"}, TemplateHash: "h1"}}, []*release.Record{r}),
	} {
		for format, write := range map[string]func(*bytes.Buffer) error{
			"json": func(b *bytes.Buffer) error { return res.WriteJSON(b) },
			"text": func(b *bytes.Buffer) error { return res.WriteText(b) },
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

func TestWorkloadHistory(t *testing.T) {
	type row struct {
		rev      int64
		release  string
		outcome  string // histOutcomeText
		current  bool
		rollback string // RollbackOf
	}
	tests := []struct {
		name    string
		current int64
		revs    []WorkloadRevision
		records []*release.Record
		want    []row
	}{{
		name:    "not made by rollguard",
		current: 2,
		revs: []WorkloadRevision{
			{Number: 1, Images: []string{"web:1"}, TemplateHash: "h1", ChangeCause: "kubectl"},
			{Number: 2, Images: []string{"web:2"}, TemplateHash: "h2"},
		},
		want: []row{{rev: 2, outcome: "-", current: true}, {rev: 1, outcome: "-"}},
	}, {
		name: "rolled back: the old revision comes back under a new number",
		// web.v1 made revision 1 (h1); web.v2 made revision 2 (h2), failed and was rolled back, which
		// gave h1's ReplicaSet revision 3.
		current: 3,
		revs: []WorkloadRevision{
			{Number: 3, History: []int64{1}, Images: []string{"web:1"}, TemplateHash: "h1"},
			{Number: 2, Images: []string{"web:2"}, TemplateHash: "h2"},
		},
		records: []*release.Record{
			rec(1, release.Succeeded, 1, "", "h1", "web:1"),
			rec(2, release.RolledBack, 2, "h1", "h2", "web:2"),
		},
		want: []row{
			{rev: 3, outcome: "rollback of web.v2", current: true, rollback: "web.v2"},
			{rev: 2, release: "web.v2", outcome: "rolled back → web.v1"},
			{rev: 1, release: "web.v1", outcome: "succeeded, rollback target"},
		},
	}, {
		name:    "failed without rollback, then a release that made no revision",
		current: 2,
		revs: []WorkloadRevision{
			{Number: 1, Images: []string{"web:1"}, TemplateHash: "h1"},
			{Number: 2, Images: []string{"web:2"}, TemplateHash: "h2"},
		},
		records: []*release.Record{
			rec(1, release.Succeeded, 1, "", "h1", "web:1"),
			rec(2, release.Failed, 2, "h1", "h2", "web:2"),
			rec(3, release.Failed, 0, "h2", "", "web:3"),
		},
		want: []row{
			{rev: 0, release: "web.v3", outcome: "failed"},
			{rev: 2, release: "web.v2", outcome: "failed", current: true},
			{rev: 1, release: "web.v1", outcome: "succeeded"},
		},
	}, {
		name:    "a record that did not note its revision is matched by images and time",
		current: 2,
		revs: []WorkloadRevision{
			{Number: 1, Images: []string{"web:1"}, TemplateHash: "h1", Created: t0},
			{Number: 2, Images: []string{"web:2"}, TemplateHash: "h2", Created: t0.Add(2*time.Minute + 3*time.Second)},
		},
		records: []*release.Record{func() *release.Record {
			r := rec(2, release.Succeeded, 0, "", "", "web:2")
			r.UpdatedAt = r.CreatedAt.Add(10 * time.Second)
			return r
		}()},
		want: []row{{rev: 2, release: "web.v2", outcome: "succeeded", current: true}, {rev: 1, outcome: "-"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := WorkloadHistory("prod", "Deployment", "web", tt.current, tt.revs, tt.records)
			if len(res.Entries) != len(tt.want) {
				t.Fatalf("%d entries, want %d: %+v", len(res.Entries), len(tt.want), res.Entries)
			}
			for i, w := range tt.want {
				e := res.Entries[i]
				got := row{e.Revision, e.Release, histOutcomeText(e), e.Current, e.RollbackOf}
				if got != w {
					t.Errorf("entry %d = %+v, want %+v", i, got, w)
				}
			}
		})
	}
}

func TestAppHistoryUndo(t *testing.T) {
	undo := rec(3, release.Succeeded, 0, "", "", "web:1")
	undo.RollbackOf = "web.v2"
	res := AppHistory("prod", "web", []*release.Record{
		rec(1, release.Succeeded, 0, "", "", "web:1"),
		rec(2, release.Succeeded, 0, "", "", "web:2"),
		undo,
	})
	var got []string
	for _, e := range res.Entries {
		got = append(got, e.Release+": "+histOutcomeText(e))
	}
	want := "web.v3: succeeded (undo of web.v2) | web.v2: succeeded | web.v1: succeeded, rollback target"
	if strings.Join(got, " | ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " | "), want)
	}
	if res.Entries[0].RolledBackTo != "web.v1" {
		t.Errorf("undo returned to %q, want web.v1", res.Entries[0].RolledBackTo)
	}
}
