package action

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/revision"
	"github.com/rollguard/rollguard/internal/track"
)

// defaultApp names a release after its first workload (or first object): a single-app release needs no
// --app, and its records and lock line up with `rollguard undo deployment/NAME`. A phase's Job (a
// migration, a smoke test) is not what the release is named after.
func defaultApp(objs []*manifest.Object) string {
	for _, o := range objs {
		if p, _ := phaseOf(o, true); track.Trackable(o.GroupVersionKind().GroupKind()) && p == "" {
			return o.GetName()
		}
	}
	if len(objs) > 0 {
		return objs[0].GetName()
	}
	return ""
}

// captureState records what each object is before the release changes it. Where a killed run left a record,
// its states win for the objects it had captured: they are the true previous state, before that run
// changed anything, and objects only it touched are carried over so a rollback restores them too.
func captureState(ctx context.Context, c *kube.Client, objs []*manifest.Object, inherited *release.Record) ([]release.ObjectState, []release.WorkloadState, error) {
	prior := map[string]release.ObjectState{}
	if inherited != nil {
		for _, o := range inherited.Objects {
			prior[o.Ref()] = o
		}
	}
	// The objects not captured before are read at once (kube.Client.GetAll), then the revisions of the
	// workloads that exist (revision.CurrentOf); the record lists the objects in apply order.
	var unknown []*unstructured.Unstructured
	var at []int
	for i, o := range objs {
		if _, known := prior[kube.Ref(o.Unstructured)]; !known {
			unknown = append(unknown, o.Unstructured)
			at = append(at, i)
		}
	}
	found, err := c.GetAll(ctx, unknown)
	if err != nil {
		return nil, nil, err
	}
	lives := make([]*unstructured.Unstructured, len(objs))
	for j, i := range at {
		if found[j].Forbidden {
			// Read it once more for the error, classified as for any read this identity may not make.
			if _, err := c.Get(ctx, objs[i].Unstructured); err != nil {
				return nil, nil, err
			}
			return nil, nil, fmt.Errorf("reading %s: forbidden, then allowed; run again", kube.Ref(objs[i].Unstructured))
		}
		lives[i] = found[j].Object
	}
	var refs []revision.Ref
	var refAt []int
	for i, o := range objs {
		_, known := prior[kube.Ref(o.Unstructured)]
		if track.Trackable(o.GroupVersionKind().GroupKind()) && (known || lives[i] != nil) { // a workload the release creates has no revision yet
			refs = append(refs, revision.Ref{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()})
			refAt = append(refAt, i)
		}
	}
	got, err := revision.CurrentOf(ctx, c, refs)
	if err != nil {
		return nil, nil, err
	}
	revs := make([]revision.Now, len(objs))
	for j, i := range refAt {
		revs[i] = got[j]
	}
	var states []release.ObjectState
	var workloads []release.WorkloadState
	seen := map[string]bool{}
	for i, o := range objs {
		st := release.ObjectState{APIVersion: o.GetAPIVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}
		if p, ok := prior[st.Ref()]; ok {
			st = p
		} else {
			st.Existed = lives[i] != nil
			st.Previous = release.Capture(lives[i])
		}
		seen[st.Ref()] = true
		states = append(states, st)
		if track.Trackable(o.GroupVersionKind().GroupKind()) {
			ws := release.WorkloadState{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName(), Images: imagesOf(objs, o.GetKind(), o.GetNamespace(), o.GetName())}
			ws.PreviousRevision, ws.PreviousTemplateHash = revs[i].Number, revs[i].Hash
			// A killed or failed release's recorded previous state is the true one (see converge), and so
			// is the revision it replaced: that is where a rollback returns.
			if inherited != nil {
				for _, iw := range inherited.Workloads {
					if iw.Kind == ws.Kind && iw.Namespace == ws.Namespace && iw.Name == ws.Name {
						ws.PreviousRevision, ws.PreviousTemplateHash = iw.PreviousRevision, iw.PreviousTemplateHash
					}
				}
			}
			workloads = append(workloads, ws)
		}
	}
	if inherited != nil {
		for _, o := range inherited.Objects {
			if !seen[o.Ref()] {
				states = append(states, o)
			}
		}
	}
	return states, workloads, nil
}

// recordRevisions notes the revision each workload rolled out, which history uses to tell which release
// a later rollback returned to: as tracking saw it with the verdict (a Deployment, from the caches), else
// read from the API (a consistent list of ReplicaSets or ControllerRevisions, tens of milliseconds).
func recordRevisions(ctx context.Context, c *kube.Client, rec *release.Record, tracked []report.Workload) {
	var refs []revision.Ref
	var at []int
	for i, w := range rec.Workloads {
		if t, ok := trackedRevision(tracked, w); ok {
			rec.Workloads[i].NewRevision, rec.Workloads[i].NewTemplateHash = t.Revision, t.TemplateHash
			continue
		}
		refs, at = append(refs, revision.Ref{Kind: w.Kind, Namespace: w.Namespace, Name: w.Name}), append(at, i)
	}
	if len(refs) == 0 {
		return
	}
	revs, err := revision.CurrentOf(ctx, c, refs)
	if err != nil {
		return
	}
	for j, r := range revs {
		rec.Workloads[at[j]].NewRevision, rec.Workloads[at[j]].NewTemplateHash = r.Number, r.Hash
	}
}

// trackedRevision is the tracked workload w with the revision tracking saw, if it saw one.
func trackedRevision(tracked []report.Workload, w release.WorkloadState) (report.Workload, bool) {
	for _, t := range tracked {
		if t.Kind == w.Kind && t.Namespace == w.Namespace && t.Name == w.Name && t.Revision > 0 && t.TemplateHash != "" {
			return t, true
		}
	}
	return report.Workload{}, false
}

// recordVerdicts copies the tracked verdicts into the record's workloads.
func recordVerdicts(rec *release.Record, ws []report.Workload) {
	for i := range rec.Workloads {
		for _, w := range ws {
			if w.Kind == rec.Workloads[i].Kind && w.Namespace == rec.Workloads[i].Namespace && w.Name == rec.Workloads[i].Name {
				rec.Workloads[i].Status, rec.Workloads[i].Reason = w.Status, w.Reason
				if w.Startup > 0 {
					rec.Workloads[i].StartupSeconds = w.Startup.Seconds()
				}
				if w.Status == diagnose.Failed {
					rec.Workloads[i].Message, rec.Workloads[i].Fix = w.Message, w.Fix
					rec.Workloads[i].Evidence = w.Evidence[:min(len(w.Evidence), 5)]
				}
			}
		}
	}
	for _, w := range ws {
		if w.Status == diagnose.Failed {
			rec.Reason, rec.Message = string(w.Reason), w.ID()+": "+w.Message
			break
		}
	}
}

// finish stamps a record's outcome and end time.
func finish(ctx context.Context, store *release.Store, rec *release.Record, o release.Outcome) error {
	rec.Outcome = o
	rec.Timings.FinishedAt = time.Now().UTC()
	return store.Update(ctx, rec)
}

// releaseNamespace is the namespace of the release's first workload (else of its first namespaced object),
// or def when it has none.
func releaseNamespace(objs []*manifest.Object, def string) string {
	for _, o := range objs {
		if track.Trackable(o.GroupVersionKind().GroupKind()) && o.GetNamespace() != "" {
			return o.GetNamespace()
		}
	}
	for _, o := range objs {
		if o.GetNamespace() != "" {
			return o.GetNamespace()
		}
	}
	return def
}

// lastGood is what a rollback of rec returns to: as recorded when rec was made, or for a record written
// before rollguard recorded it, the newest succeeded release before rec.
func lastGood(ctx context.Context, store *release.Store, rec *release.Record) string {
	if rec.RestoresTo != "" {
		return rec.RestoresTo
	}
	ns, app, id := rec.Namespace, rec.App, rec.ID
	recs, err := store.List(ctx, ns, app)
	if err != nil {
		return ""
	}
	for _, r := range recs {
		if r.ID != id && r.Revision < rec.Revision && r.Outcome == release.Succeeded {
			return r.ID
		}
	}
	return ""
}

// createNamespaces applies the release's Namespace objects that do not exist yet.
func createNamespaces(ctx context.Context, c *kube.Client, objs []*manifest.Object) error {
	for _, o := range objs {
		if o.GetKind() != "Namespace" || o.GroupVersionKind().Group != "" {
			continue
		}
		ok, err := c.NamespaceExists(ctx, o.GetName())
		if err != nil {
			return err
		}
		if !ok {
			if _, err := c.Apply(ctx, o.Unstructured, false); err != nil {
				return fmt.Errorf("%s: %w", o.Source, err)
			}
		}
	}
	return nil
}
