// Package history merges a workload's revisions (internal/revision) with rollguard's release records into
// one history, newest first: a record claims the revision it rolled out, a revision no record claims is
// somebody else's change (kubectl, Argo CD, helm) or a rollback's, and each rolled-back release names the
// release it returned to. Pure: records and revisions in, entries out; internal/report renders them.
//
// A history never shows object bodies: release records hold the previous state of Secrets, and only
// their kinds and names leave this package.
package history

import (
	"sort"
	"strings"
	"time"

	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/revision"
)

// Result is a history, newest first.
type Result struct {
	Namespace string `json:"namespace"`
	// Kind and Name are set for a workload's history; App for an app's.
	Kind    string  `json:"kind,omitempty"`
	Name    string  `json:"name,omitempty"`
	App     string  `json:"app,omitempty"`
	Entries []Entry `json:"entries"`
}

// Entry is one revision of a workload or one release of an app.
type Entry struct {
	// Revision is the workload's revision (deployment.kubernetes.io/revision or the ControllerRevision
	// number); 0 in an app's history or when the release made no revision.
	Revision int64 `json:"revision,omitempty"`
	// Current marks the revision the workload runs now.
	Current bool `json:"current,omitempty"`
	// Release is the rollguard release ID; empty for a revision rollguard did not make.
	Release     string    `json:"release,omitempty"`
	Environment string    `json:"environment,omitempty"`
	Images      []string  `json:"images,omitempty"`
	ChangeCause string    `json:"changeCause,omitempty"`
	DeployedBy  string    `json:"deployedBy,omitempty"`
	Commit      string    `json:"commit,omitempty"`
	PipelineURL string    `json:"pipelineURL,omitempty"`
	Time        time.Time `json:"time,omitzero"`
	// Outcome is the release's outcome (succeeded, failed, rolled_back, ...); empty when unknown.
	Outcome release.Outcome `json:"outcome,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	Message string          `json:"message,omitempty"`
	// RolledBackTo is, for a release that was rolled back or undone, the release it returned to.
	RolledBackTo string `json:"rolledBackTo,omitempty"`
	// RollbackTarget lists the releases whose rollback returned to this one.
	RollbackTarget []string `json:"rollbackTargetOf,omitempty"`
	// RollbackOf is set on an entry that is a rollback or undo: the release it undid.
	RollbackOf string `json:"rollbackOf,omitempty"`
	// ObservedBy is "rollguard guard" for a rollout somebody else started that the guard followed.
	ObservedBy string `json:"observedBy,omitempty"`
	// Irreversible names the pre-deploy Job (rollguard.dev/reversible: "false") after which the release
	// could no longer be rolled back automatically; Phases are its release phases (pre-deploy, verify, bake).
	Irreversible string          `json:"irreversible,omitempty"`
	Phases       []release.Phase `json:"phases,omitempty"`
	// SameAs lists earlier revisions with the same pod template (a rollback re-uses the old revision).
	SameAs []int64 `json:"sameTemplateAs,omitempty"`
	// Objects are the objects the release changed: kinds and names only.
	Objects []Object `json:"objects,omitempty"`

	hash string
}

// Object names an object a release changed; never its content.
type Object struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Created is true when the release created the object.
	Created bool `json:"created,omitempty"`
}

// WorkloadOf is the state r recorded of the workload kind ns/name, or nil when r did not change it.
func WorkloadOf(r *release.Record, kind, ns, name string) *release.WorkloadState {
	for i, w := range r.Workloads {
		wns := w.Namespace
		if wns == "" {
			wns = r.Namespace
		}
		if w.Kind == kind && w.Name == name && wns == ns {
			return &r.Workloads[i]
		}
	}
	return nil
}

// App is an app's releases, newest first, from its records.
func App(namespace, app string, records []*release.Record) *Result {
	res := &Result{Namespace: namespace, App: app, Entries: []Entry{}}
	sorted := newestFirst(records)
	targets := rollbackTargets(sorted)
	for _, r := range sorted {
		e := entryOf(r)
		for _, w := range r.Workloads {
			e.Images = append(e.Images, w.Images...)
		}
		res.Entries = append(res.Entries, e)
	}
	markTargets(res.Entries, targets)
	return res
}

// Workload merges a workload's revisions with the release records that name it: a record claims
// the revision it rolled out (by number, or by template hash when the number moved on), and a revision a
// rolled-back release returned to is marked as that rollback. records may belong to several apps.
func Workload(namespace, kind, name string, current int64, revs []revision.Revision, records []*release.Record) *Result {
	res := &Result{Namespace: namespace, Kind: kind, Name: name}
	byNumber := map[int64]*Entry{}
	var entries []*Entry
	for _, rv := range revs {
		images := rv.Images()
		numbers := append([]int64{rv.Number}, rv.History...)
		var same []int64
		for _, n := range numbers {
			if n != rv.Number {
				same = append(same, n)
			}
		}
		for _, n := range numbers {
			e := &Entry{Revision: n, Current: n == current, Images: images, hash: rv.Hash}
			if n == rv.Number {
				e.ChangeCause = rv.ChangeCause
				e.SameAs = same
				if len(rv.History) == 0 {
					e.Time = rv.Created
				}
			} else {
				e.SameAs = []int64{rv.Number}
			}
			if n == minOf(numbers) {
				e.Time = rv.Created
			}
			byNumber[n] = e
			entries = append(entries, e)
		}
	}
	sorted := newestFirst(records)
	targets := rollbackTargets(sorted)
	var unmatched []*Entry
	for _, r := range sorted {
		w := WorkloadOf(r, kind, namespace, name)
		e := entryOf(r)
		e.Images = w.Images
		target := byNumber[w.NewRevision]
		if target == nil || target.Release != "" {
			target = nil
			if w.NewRevision > 0 || w.NewTemplateHash != "" {
				// The number moved on (a later rollback re-used this revision): find it by its template.
				for _, cand := range entries {
					if cand.Release == "" && w.NewTemplateHash != "" && cand.hash == w.NewTemplateHash && cand.Revision == w.NewRevision {
						target = cand
						break
					}
				}
			}
		}
		if target == nil && w.NewRevision == 0 && w.NewTemplateHash == "" && len(w.Images) > 0 {
			target = byImagesAndTime(entries, w.Images, r)
		}
		if target == nil {
			e.Revision = w.NewRevision
			unmatched = append(unmatched, &e)
			continue
		}
		merge(target, e)
	}
	// A revision no record claims, whose template is the one a rolled-back release replaced and which came
	// after that release, is that release's rollback.
	for _, r := range sorted {
		if r.Outcome != release.RolledBack && r.Outcome != release.RollbackFailed {
			continue
		}
		w := WorkloadOf(r, kind, namespace, name)
		if w.PreviousTemplateHash == "" {
			continue
		}
		for _, e := range entries {
			if e.Release == "" && e.RollbackOf == "" && e.hash == w.PreviousTemplateHash && e.Revision > w.NewRevision && w.NewRevision > 0 {
				e.RollbackOf = r.ID
				e.DeployedBy = r.DeployedBy
				if !r.Timings.RollbackStartedAt.IsZero() {
					e.Time = r.Timings.RollbackStartedAt
				}
				break
			}
		}
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Revision > entries[j].Revision })
	// Records that claim no revision (a release that failed before its rollout, or whose revision was
	// pruned) go where their time puts them.
	for _, u := range unmatched {
		at := len(entries)
		for i, e := range entries {
			if !e.Time.IsZero() && !u.Time.IsZero() && e.Time.Before(u.Time) {
				at = i
				break
			}
		}
		entries = append(entries[:at], append([]*Entry{u}, entries[at:]...)...)
	}
	res.Entries = make([]Entry, 0, len(entries))
	for _, e := range entries {
		res.Entries = append(res.Entries, *e)
	}
	markTargets(res.Entries, targets)
	return res
}

// byImagesAndTime finds the revision a record that did not note its revision made: the one unclaimed
// revision with the record's images that was created while the release ran. Creation times have second
// precision, hence the slack.
func byImagesAndTime(entries []*Entry, images []string, r *release.Record) *Entry {
	from, to := r.CreatedAt.Add(-time.Second), r.UpdatedAt.Add(time.Second)
	var found *Entry
	for _, e := range entries {
		if e.Release != "" || e.Time.IsZero() || e.Time.Before(from) || e.Time.After(to) || strings.Join(e.Images, ",") != strings.Join(images, ",") {
			continue
		}
		if found != nil {
			return nil // ambiguous
		}
		found = e
	}
	return found
}

func minOf(ns []int64) int64 {
	m := ns[0]
	for _, n := range ns {
		m = min(m, n)
	}
	return m
}

// merge lays a record's entry over a revision's: the record knows who, when and how it ended.
func merge(dst *Entry, rec Entry) {
	rec.Revision, rec.Current, rec.SameAs, rec.hash = dst.Revision, dst.Current, dst.SameAs, dst.hash
	if len(rec.Images) == 0 {
		rec.Images = dst.Images
	}
	if rec.ChangeCause == "" {
		rec.ChangeCause = dst.ChangeCause
	}
	*dst = rec
}

func entryOf(r *release.Record) Entry {
	e := Entry{
		Release: r.ID, Environment: r.Environment, ChangeCause: r.ChangeCause, DeployedBy: r.DeployedBy,
		Commit: r.CI.Commit, PipelineURL: r.CI.PipelineURL, Time: r.CreatedAt, Outcome: r.Outcome,
		Reason: r.Reason, Message: r.Message, RollbackOf: r.RollbackOf, ObservedBy: r.ObservedBy, Phases: r.Phases,
	}
	if r.Irreversible != nil {
		e.Irreversible = r.Irreversible.Job
	}
	for _, o := range r.Objects {
		// Only the name: o.Previous may be a Secret.
		e.Objects = append(e.Objects, Object{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Created: !o.Existed})
	}
	return e
}

func newestFirst(records []*release.Record) []*release.Record {
	out := append([]*release.Record(nil), records...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].App == out[j].App {
			return out[i].Revision > out[j].Revision
		}
		return out[i].CreatedAt.After(out[j].CreatedAt)
	})
	return out
}

// rollbackTargets maps each rolled-back release (and each undo) to the release whose state the
// rollback restored. Records say it themselves (RestoresTo); for records written before they did, it is
// worked out: the newest release before it that ended healthy, since a failed, rejected, held or
// interrupted release hands its recorded previous state on to the next one. records are newest first.
func rollbackTargets(records []*release.Record) map[string]string {
	byApp := map[string][]*release.Record{}
	for _, r := range records {
		byApp[r.App] = append(byApp[r.App], r)
	}
	out := map[string]string{}
	for _, rs := range byApp {
		// Oldest first: each release's "state before" is known when we reach it.
		state := "" // the last known-good release: what a rollback returns to
		before := map[string]string{}
		for i := len(rs) - 1; i >= 0; i-- {
			r := rs[i]
			before[r.ID] = state
			switch {
			case r.RollbackOf != "" || r.Undo:
				t := r.RestoresTo
				if t == "" && !notedRevision(r) && r.RollbackOf != "" {
					// An undo recorded before undos noted where they went: assume the revision before.
					t = before[r.RollbackOf]
				}
				if t != "" {
					out[r.ID] = t
				}
				if r.Outcome == release.Succeeded {
					state = r.ID
				}
			case r.Outcome == release.RolledBack:
				t := r.RestoresTo
				if t == "" {
					t = state
				}
				if t != "" {
					out[r.ID] = t
					state = t
				}
			case r.Outcome == release.Succeeded:
				state = r.ID
			}
		}
	}
	return out
}

// notedRevision reports whether a record noted the revision it rolled out (every record since undos
// record where they went; a record without it is older).
func notedRevision(r *release.Record) bool {
	for _, w := range r.Workloads {
		if w.NewRevision > 0 {
			return true
		}
	}
	return false
}

func markTargets(entries []Entry, targets map[string]string) {
	index := map[string]int{}
	for i, e := range entries {
		if e.Release != "" {
			index[e.Release] = i
		}
	}
	for i := range entries {
		t, ok := targets[entries[i].Release]
		if !ok {
			continue
		}
		entries[i].RolledBackTo = t
		if j, ok := index[t]; ok {
			entries[j].RollbackTarget = append(entries[j].RollbackTarget, entries[i].Release)
		}
	}
}
