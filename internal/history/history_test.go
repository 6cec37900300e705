package history_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

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

func TestWorkload(t *testing.T) {
	type row struct {
		rev      int64
		release  string
		outcome  string // report.HistoryOutcome
		current  bool
		rollback string // RollbackOf
	}
	tests := []struct {
		name    string
		current int64
		revs    []revision.Revision
		records []*release.Record
		want    []row
	}{{
		name:    "not made by rollguard",
		current: 2,
		revs: []revision.Revision{
			{Number: 1, Template: template("web:1"), Hash: "h1", ChangeCause: "kubectl"},
			{Number: 2, Template: template("web:2"), Hash: "h2"},
		},
		want: []row{{rev: 2, outcome: "-", current: true}, {rev: 1, outcome: "-"}},
	}, {
		name: "rolled back: the old revision comes back under a new number",
		// web.v1 made revision 1 (h1); web.v2 made revision 2 (h2), failed and was rolled back, which
		// gave h1's ReplicaSet revision 3.
		current: 3,
		revs: []revision.Revision{
			{Number: 3, History: []int64{1}, Template: template("web:1"), Hash: "h1"},
			{Number: 2, Template: template("web:2"), Hash: "h2"},
		},
		records: []*release.Record{
			record(1, release.Succeeded, 1, "", "h1", "web:1"),
			record(2, release.RolledBack, 2, "h1", "h2", "web:2"),
		},
		want: []row{
			{rev: 3, outcome: "rollback of web.v2", current: true, rollback: "web.v2"},
			{rev: 2, release: "web.v2", outcome: "rolled back → web.v1"},
			{rev: 1, release: "web.v1", outcome: "succeeded, rollback target"},
		},
	}, {
		name:    "failed without rollback, then a release that made no revision",
		current: 2,
		revs: []revision.Revision{
			{Number: 1, Template: template("web:1"), Hash: "h1"},
			{Number: 2, Template: template("web:2"), Hash: "h2"},
		},
		records: []*release.Record{
			record(1, release.Succeeded, 1, "", "h1", "web:1"),
			record(2, release.Failed, 2, "h1", "h2", "web:2"),
			record(3, release.Failed, 0, "h2", "", "web:3"),
		},
		want: []row{
			{rev: 0, release: "web.v3", outcome: "failed"},
			{rev: 2, release: "web.v2", outcome: "failed", current: true},
			{rev: 1, release: "web.v1", outcome: "succeeded"},
		},
	}, {
		name:    "a record that did not note its revision is matched by images and time",
		current: 2,
		revs: []revision.Revision{
			{Number: 1, Template: template("web:1"), Hash: "h1", Created: t0},
			{Number: 2, Template: template("web:2"), Hash: "h2", Created: t0.Add(2*time.Minute + 3*time.Second)},
		},
		records: []*release.Record{func() *release.Record {
			r := record(2, release.Succeeded, 0, "", "", "web:2")
			r.UpdatedAt = r.CreatedAt.Add(10 * time.Second)
			return r
		}()},
		want: []row{{rev: 2, release: "web.v2", outcome: "succeeded", current: true}, {rev: 1, outcome: "-"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := history.Workload("prod", "Deployment", "web", tt.current, tt.revs, tt.records)
			if len(res.Entries) != len(tt.want) {
				t.Fatalf("%d entries, want %d: %+v", len(res.Entries), len(tt.want), res.Entries)
			}
			for i, w := range tt.want {
				e := res.Entries[i]
				got := row{e.Revision, e.Release, report.HistoryOutcome(e), e.Current, e.RollbackOf}
				if got != w {
					t.Errorf("entry %d = %+v, want %+v", i, got, w)
				}
			}
		})
	}
}

func TestAppUndo(t *testing.T) {
	undo := record(3, release.Succeeded, 0, "", "", "web:1")
	undo.RollbackOf = "web.v2"
	res := history.App("prod", "web", []*release.Record{
		record(1, release.Succeeded, 0, "", "", "web:1"),
		record(2, release.Succeeded, 0, "", "", "web:2"),
		undo,
	})
	var got []string
	for _, e := range res.Entries {
		got = append(got, e.Release+": "+report.HistoryOutcome(e))
	}
	want := "web.v3: succeeded (undo of web.v2) | web.v2: succeeded | web.v1: succeeded, rollback target"
	if strings.Join(got, " | ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " | "), want)
	}
	if res.Entries[0].RolledBackTo != "web.v1" {
		t.Errorf("undo returned to %q, want web.v1", res.Entries[0].RolledBackTo)
	}
}
