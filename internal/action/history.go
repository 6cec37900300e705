package action

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/release"
)

// History lists what was deployed, by whom and how it ended: for a workload, rollguard's release records
// merged with the workload's own revisions (ReplicaSets or ControllerRevisions), so revisions rollguard
// did not make (kubectl, Argo CD, helm) appear too; for an app, its release records.
//
// A history never shows object bodies: release records hold the previous state of Secrets, and only
// their kinds and names leave this package.
type History struct {
	Connect   Connector
	Namespace string
	// Object is TYPE/NAME (deployment/web, sts/db, ds/agent) for a workload's history, or an app name
	// (no slash) for its releases.
	Object string
}

// HistoryResult is a history, newest first.
type HistoryResult struct {
	Namespace string `json:"namespace"`
	// Kind and Name are set for a workload's history; App for an app's.
	Kind    string         `json:"kind,omitempty"`
	Name    string         `json:"name,omitempty"`
	App     string         `json:"app,omitempty"`
	Entries []HistoryEntry `json:"entries"`
}

// HistoryEntry is one revision of a workload or one release of an app.
type HistoryEntry struct {
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
	Objects []HistoryObject `json:"objects,omitempty"`

	hash string
}

// HistoryObject names an object a release changed; never its content.
type HistoryObject struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Created is true when the release created the object.
	Created bool `json:"created,omitempty"`
}

// Run reads the history.
func (h *History) Run(ctx context.Context) (*HistoryResult, error) {
	typ, name, isWorkload := strings.Cut(h.Object, "/")
	if isWorkload && (typ == "" || name == "") || h.Object == "" {
		return nil, exitcode.BadInputf("%q is neither TYPE/NAME nor an app name: pass e.g. deployment/web, or --app web", h.Object)
	}
	if !isWorkload {
		if err := release.ValidateApp(h.Object); err != nil {
			return nil, err
		}
	}
	c, err := h.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ns := h.Namespace
	if ns == "" {
		ns = c.Namespace
	}
	store := release.NewStore(c)
	if !isWorkload {
		records, err := store.List(ctx, ns, h.Object)
		if err != nil {
			return nil, err
		}
		if len(records) == 0 {
			return nil, exitcode.BadInputf("no releases of app %q in namespace %q: check the name and -n/--namespace", h.Object, ns)
		}
		return AppHistory(ns, h.Object, records), nil
	}

	gvk, err := c.Mapper.KindFor(schema.ParseGroupResource(typ).WithVersion(""))
	if err != nil {
		return nil, exitcode.BadInputf("unknown resource type %q: pass deployment, statefulset or daemonset", typ)
	}
	if gvk.Group != "apps" || (gvk.Kind != "Deployment" && gvk.Kind != "StatefulSet" && gvk.Kind != "DaemonSet") {
		return nil, exitcode.BadInputf("%s is a %s; history covers Deployments, StatefulSets and DaemonSets (or --app NAME for a release)", h.Object, gvk.Kind)
	}
	revs, current, err := histWorkloadRevisions(ctx, c, gvk.Kind, ns, name)
	if err != nil {
		return nil, err
	}
	records, err := store.List(ctx, ns, "")
	if err != nil {
		return nil, err
	}
	var mine []*release.Record
	for _, r := range records {
		if histWorkloadOf(r, gvk.Kind, ns, name) != nil {
			mine = append(mine, r)
		}
	}
	if revs == nil && len(mine) == 0 {
		return nil, exitcode.BadInputf("%s %q not found in namespace %q and no release recorded it: check the name and -n/--namespace", gvk.Kind, name, ns)
	}
	return WorkloadHistory(ns, gvk.Kind, name, current, revs, mine), nil
}

// WorkloadRevision is one revision of a workload as the cluster keeps it.
type WorkloadRevision struct {
	Number int64
	// History are earlier numbers of the same revision (deployment.kubernetes.io/revision-history): a
	// rollback to a revision gives it a new number.
	History     []int64
	Images      []string
	ChangeCause string
	// TemplateHash is the pod-template-hash or controller-revision-hash.
	TemplateHash string
	Created      time.Time
}

// histWorkloadRevisions reads a workload's revisions from its ReplicaSets (Deployments) or
// ControllerRevisions (StatefulSets, DaemonSets). revs is nil when the workload does not exist.
func histWorkloadRevisions(ctx context.Context, c *kube.Client, kind, ns, name string) (revs []WorkloadRevision, current int64, err error) {
	apps := c.Typed.AppsV1()
	doing := "reading the revisions of " + kind + "/" + name
	var uid types.UID
	var selector *metav1.LabelSelector
	switch kind {
	case "Deployment":
		d, err := apps.Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, 0, nil
		}
		if err != nil {
			return nil, 0, kube.Classify(err, doing, c.Server)
		}
		uid, selector = d.UID, d.Spec.Selector
		current, _ = strconv.ParseInt(d.Annotations["deployment.kubernetes.io/revision"], 10, 64)
	case "StatefulSet":
		s, err := apps.StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, 0, nil
		}
		if err != nil {
			return nil, 0, kube.Classify(err, doing, c.Server)
		}
		uid, selector = s.UID, s.Spec.Selector
		current = -1
		defer func() { current = histRevisionByHash(revs, s.Status.UpdateRevision) }()
	case "DaemonSet":
		d, err := apps.DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, 0, nil
		}
		if err != nil {
			return nil, 0, kube.Classify(err, doing, c.Server)
		}
		uid, selector = d.UID, d.Spec.Selector
		defer func() { current = histNewestRevision(revs) }()
	}
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", doing, err)
	}
	revs = []WorkloadRevision{}
	if kind == "Deployment" {
		list, err := apps.ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return nil, 0, kube.Classify(err, doing, c.Server)
		}
		for _, rs := range list.Items {
			if !release.ControlledBy(&rs, uid) {
				continue
			}
			n, _ := strconv.ParseInt(rs.Annotations["deployment.kubernetes.io/revision"], 10, 64)
			revs = append(revs, WorkloadRevision{
				Number: n, History: histParseRevisions(rs.Annotations["deployment.kubernetes.io/revision-history"]),
				Images: podImages(rs.Spec.Template.Spec), ChangeCause: rs.Annotations[manifest.ChangeCauseAnnotation],
				TemplateHash: rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey], Created: rs.CreationTimestamp.UTC(),
			})
		}
		return revs, current, nil
	}
	list, err := apps.ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, 0, kube.Classify(err, doing, c.Server)
	}
	for _, cr := range list.Items {
		if !release.ControlledBy(&cr, uid) {
			continue
		}
		// The revision's data is the workload's pod template as a strategic-histMerge patch.
		var data struct {
			Spec struct {
				Template corev1.PodTemplateSpec `json:"template"`
			} `json:"spec"`
		}
		_ = json.Unmarshal(cr.Data.Raw, &data)
		revs = append(revs, WorkloadRevision{
			Number: cr.Revision, Images: podImages(data.Spec.Template.Spec),
			ChangeCause:  cr.Annotations[manifest.ChangeCauseAnnotation],
			TemplateHash: cr.Labels[appsv1.ControllerRevisionHashLabelKey], Created: cr.CreationTimestamp.UTC(),
		})
		if kind == "StatefulSet" && cr.Name != "" {
			revs[len(revs)-1].TemplateHash = cr.Name // status.updateRevision names the ControllerRevision
		}
	}
	return revs, current, nil
}

func histRevisionByHash(revs []WorkloadRevision, name string) int64 {
	for _, r := range revs {
		if r.TemplateHash == name {
			return r.Number
		}
	}
	return 0
}

func histNewestRevision(revs []WorkloadRevision) int64 {
	var n int64
	for _, r := range revs {
		n = max(n, r.Number)
	}
	return n
}

func histParseRevisions(s string) []int64 {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func histWorkloadOf(r *release.Record, kind, ns, name string) *release.WorkloadState {
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

// AppHistory is an app's releases, newest first, from its records.
func AppHistory(namespace, app string, records []*release.Record) *HistoryResult {
	res := &HistoryResult{Namespace: namespace, App: app, Entries: []HistoryEntry{}}
	sorted := histNewestFirst(records)
	targets := histRollbackTargets(sorted)
	for _, r := range sorted {
		e := histEntryOf(r)
		for _, w := range r.Workloads {
			e.Images = append(e.Images, w.Images...)
		}
		res.Entries = append(res.Entries, e)
	}
	histMarkTargets(res.Entries, targets)
	return res
}

// WorkloadHistory merges a workload's revisions with the release records that name it: a record claims
// the revision it rolled out (by number, or by template hash when the number moved on), and a revision a
// rolled-back release returned to is marked as that rollback. records may belong to several apps.
func WorkloadHistory(namespace, kind, name string, current int64, revs []WorkloadRevision, records []*release.Record) *HistoryResult {
	res := &HistoryResult{Namespace: namespace, Kind: kind, Name: name}
	byNumber := map[int64]*HistoryEntry{}
	var entries []*HistoryEntry
	for _, rv := range revs {
		numbers := append([]int64{rv.Number}, rv.History...)
		var same []int64
		for _, n := range numbers {
			if n != rv.Number {
				same = append(same, n)
			}
		}
		for _, n := range numbers {
			e := &HistoryEntry{Revision: n, Current: n == current, Images: rv.Images, hash: rv.TemplateHash}
			if n == rv.Number {
				e.ChangeCause = rv.ChangeCause
				e.SameAs = same
				if len(rv.History) == 0 {
					e.Time = rv.Created
				}
			} else {
				e.SameAs = []int64{rv.Number}
			}
			if n == histMinOf(numbers) {
				e.Time = rv.Created
			}
			byNumber[n] = e
			entries = append(entries, e)
		}
	}
	sorted := histNewestFirst(records)
	targets := histRollbackTargets(sorted)
	var unmatched []*HistoryEntry
	for _, r := range sorted {
		w := histWorkloadOf(r, kind, namespace, name)
		e := histEntryOf(r)
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
			target = histByImagesAndTime(entries, w.Images, r)
		}
		if target == nil {
			e.Revision = w.NewRevision
			unmatched = append(unmatched, &e)
			continue
		}
		histMerge(target, e)
	}
	// A revision no record claims, whose template is the one a rolled-back release replaced and which came
	// after that release, is that release's rollback.
	for _, r := range sorted {
		if r.Outcome != release.RolledBack && r.Outcome != release.RollbackFailed {
			continue
		}
		w := histWorkloadOf(r, kind, namespace, name)
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
		entries = append(entries[:at], append([]*HistoryEntry{u}, entries[at:]...)...)
	}
	res.Entries = make([]HistoryEntry, 0, len(entries))
	for _, e := range entries {
		res.Entries = append(res.Entries, *e)
	}
	histMarkTargets(res.Entries, targets)
	return res
}

// histByImagesAndTime finds the revision a record that did not note its revision made: the one unclaimed
// revision with the record's images that was created while the release ran. Creation times have second
// precision, hence the slack.
func histByImagesAndTime(entries []*HistoryEntry, images []string, r *release.Record) *HistoryEntry {
	from, to := r.CreatedAt.Add(-time.Second), r.UpdatedAt.Add(time.Second)
	var found *HistoryEntry
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

func histMinOf(ns []int64) int64 {
	m := ns[0]
	for _, n := range ns {
		m = min(m, n)
	}
	return m
}

// histMerge lays a record's entry over a revision's: the record knows who, when and how it ended.
func histMerge(dst *HistoryEntry, rec HistoryEntry) {
	rec.Revision, rec.Current, rec.SameAs, rec.hash = dst.Revision, dst.Current, dst.SameAs, dst.hash
	if len(rec.Images) == 0 {
		rec.Images = dst.Images
	}
	if rec.ChangeCause == "" {
		rec.ChangeCause = dst.ChangeCause
	}
	*dst = rec
}

func histEntryOf(r *release.Record) HistoryEntry {
	e := HistoryEntry{
		Release: r.ID, Environment: r.Environment, ChangeCause: r.ChangeCause, DeployedBy: r.DeployedBy,
		Commit: r.CI.Commit, PipelineURL: r.CI.PipelineURL, Time: r.CreatedAt, Outcome: r.Outcome,
		Reason: r.Reason, Message: r.Message, RollbackOf: r.RollbackOf, ObservedBy: r.ObservedBy, Phases: r.Phases,
	}
	if r.Irreversible != nil {
		e.Irreversible = r.Irreversible.Job
	}
	for _, o := range r.Objects {
		// Only the name: o.Previous may be a Secret.
		e.Objects = append(e.Objects, HistoryObject{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Created: !o.Existed})
	}
	return e
}

func histNewestFirst(records []*release.Record) []*release.Record {
	out := append([]*release.Record(nil), records...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].App == out[j].App {
			return out[i].Revision > out[j].Revision
		}
		return out[i].CreatedAt.After(out[j].CreatedAt)
	})
	return out
}

// histRollbackTargets maps each rolled-back release (and each undo) to the release whose state the
// rollback restored. Records say it themselves (RestoresTo); for records written before they did, it is
// worked out: the newest release before it that ended healthy, since a failed, rejected, held or
// interrupted release hands its recorded previous state on to the next one. records are newest first.
func histRollbackTargets(records []*release.Record) map[string]string {
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
				if t == "" && !histNotedRevision(r) && r.RollbackOf != "" {
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

// histNotedRevision reports whether a record noted the revision it rolled out (every record since undos
// record where they went; a record without it is older).
func histNotedRevision(r *release.Record) bool {
	for _, w := range r.Workloads {
		if w.NewRevision > 0 {
			return true
		}
	}
	return false
}

func histMarkTargets(entries []HistoryEntry, targets map[string]string) {
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

// WriteJSON writes the history as `-o json`.
func (r *HistoryResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("writing the history: %w", err)
	}
	return nil
}

// WriteText writes the history as a table.
func (r *HistoryResult) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if r.App != "" {
		fmt.Fprintln(tw, "RELEASE\tOUTCOME\tIMAGES\tDEPLOYED BY\tTIME\tCHANGE CAUSE")
	} else {
		fmt.Fprintln(tw, "REVISION\tRELEASE\tOUTCOME\tIMAGES\tDEPLOYED BY\tTIME\tCHANGE CAUSE")
	}
	for _, e := range r.Entries {
		cols := []string{histDash(e.Release), histOutcomeText(e), histDash(strings.Join(e.Images, ",")), histDash(e.DeployedBy), histTimeText(e.Time), histDash(e.ChangeCause)}
		if r.App == "" {
			rev := "-"
			if e.Revision > 0 {
				rev = strconv.FormatInt(e.Revision, 10)
			}
			if e.Current {
				rev += " (current)"
			}
			cols = append([]string{rev}, cols...)
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the history: %w", err)
	}
	return nil
}

func histOutcomeText(e HistoryEntry) string {
	var parts []string
	switch {
	case e.RollbackOf != "" && e.Release == "":
		parts = append(parts, "rollback of "+e.RollbackOf)
	case e.RollbackOf != "":
		parts = append(parts, e.Outcome.Text()+" (undo of "+e.RollbackOf+")")
	case e.Outcome != "":
		s := e.Outcome.Text()
		if e.ObservedBy != "" && e.Outcome == release.RolledBack {
			s += " by guard"
		}
		if e.Reason != "" && e.Outcome != release.Succeeded {
			s += ": " + e.Reason
		}
		parts = append(parts, s)
	case len(e.SameAs) > 0:
		parts = append(parts, "same as "+histJoinInts(e.SameAs))
	}
	if e.RolledBackTo != "" && e.RollbackOf == "" {
		parts[len(parts)-1] += " → " + e.RolledBackTo
	}
	if len(e.RollbackTarget) > 0 {
		parts = append(parts, "rollback target")
	}
	if e.Irreversible != "" {
		parts = append(parts, "irreversible: "+e.Irreversible)
	}
	for _, p := range e.Phases {
		parts = append(parts, p.Name+" "+strings.ReplaceAll(p.Outcome, "_", " "))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func histJoinInts(ns []int64) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = "revision " + strconv.FormatInt(n, 10)
	}
	return strings.Join(s, ", ")
}

func histTimeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func histDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
