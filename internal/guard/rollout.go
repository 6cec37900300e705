package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/lock"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/notify"
	"github.com/rollguard/rollguard/internal/release"
	workloadrev "github.com/rollguard/rollguard/internal/revision"
)

// ObservedBy marks the records the guard writes (release.Record.ObservedBy).
const ObservedBy = "rollguard guard"

// start deals with a new template of a guarded workload that is not healthy yet. Under the app's lock (a
// deploy holding it owns the rollout) it looks up the app's records for this template: one the guard
// rolled back before is known bad and is held rather than rolled back again; one somebody decided on is
// left alone; one a killed guard was following is resumed; otherwise a record is written and followed.
func (g *Guard) start(ctx context.Context, k key, w client.Object, pol Policy, hash string, revs []revision) (reconcile.Result, error) {
	seen := time.Now()
	lk, err := lock.Acquire(ctx, g.kc, k.namespace, pol.App, lock.Options{Holder: g.holder(), TTL: guardLockTTL})
	var held *lock.HeldError
	if errors.As(err, &held) {
		// A rollguard deploy (or undo, rollback, approve) is changing this app: its rollout is its own.
		g.metrics.skipped.WithLabelValues("deploy-lock").Inc()
		g.log.Info("rollout belongs to the run holding the app's lock", "workload", k.String(), "holder", held.Holder)
		return reconcile.Result{RequeueAfter: held.ExpiresIn + time.Second}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	// Released before a follower starts: its rollback takes the lock again, and a verdict can be immediate.
	unlock := sync.OnceFunc(func() { _ = lk.Release(context.WithoutCancel(ctx)) })
	defer unlock()

	records, live, err := g.read(ctx, k, pol.App)
	if err != nil {
		return reconcile.Result{}, err
	}
	prior := latestFor(records, k, hash)
	switch {
	case prior == nil:
	case prior.Outcome == release.RolledBack:
		return reconcile.Result{}, g.holdKnownBad(ctx, k, w, pol, hash, revs, records, live, prior)
	case prior.Outcome == release.PendingApproval, prior.Outcome == release.Failed, prior.Outcome == release.Rejected, prior.Outcome == release.RollbackFailed:
		g.markHandled(k, hash)
		return reconcile.Result{}, nil
	case prior.ObservedBy == ObservedBy && (prior.Outcome == release.Tracking || prior.Outcome == release.Applying):
		g.log.Info("resuming a rollout a previous guard was following", "workload", k.String(), "release", prior.ID)
		unlock()
		g.follow(k, hash, prior, pol, seen)
		return reconcile.Result{}, nil
	case prior.Outcome == release.RollingBack:
		unlock()
		g.finishRollback(k, hash, prior, pol)
		return reconcile.Result{}, nil
	}
	rec, err := g.record(ctx, k, w, pol, hash, revs, records, live, nil)
	if err != nil {
		return reconcile.Result{}, err
	}
	// The annotation and the lock's release are independent round trips: both at once, before following.
	var annotated error
	var wg sync.WaitGroup
	wg.Go(func() { annotated = g.annotate(ctx, k, rec.ID) })
	wg.Go(unlock)
	wg.Wait()
	if annotated != nil {
		return reconcile.Result{}, annotated
	}
	crashpoint.Hit("guard:recorded")
	g.log.Info("following a rollout", "workload", k.String(), "release", rec.ID, "by", rec.DeployedBy)
	g.event(w, corev1.EventTypeNormal, "RolloutStarted", "rollguard guard follows the rollout of %s as release %s", strings.Join(rec.Workloads[0].Images, ","), rec.ID)
	g.follow(k, hash, rec, pol, seen)
	return reconcile.Result{}, nil
}

// read returns the app's records and the workload read whole from the API (not the cache: the record
// needs its managedFields to say who changed it), at once: they are independent round trips on the path
// from seeing a rollout to following it.
func (g *Guard) read(ctx context.Context, k key, app string) ([]*release.Record, *unstructured.Unstructured, error) {
	res, err := g.resource(k)
	if err != nil {
		return nil, nil, err
	}
	var records []*release.Record
	var live *unstructured.Unstructured
	var listErr, getErr error
	var wg sync.WaitGroup
	wg.Go(func() { records, listErr = g.store.List(ctx, k.namespace, app) })
	wg.Go(func() { live, getErr = res.Get(ctx, k.name, metav1.GetOptions{}) })
	wg.Wait()
	if listErr != nil {
		return nil, nil, listErr
	}
	if getErr != nil {
		return nil, nil, kube.Classify(getErr, "reading "+k.String(), g.kc.Server)
	}
	return records, live, nil
}

// resource is the API of the workload's kind (apps/v1) in its namespace.
func (g *Guard) resource(k key) (dynamic.ResourceInterface, error) {
	return g.kc.Resource(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: k.kind}, k.namespace)
}

// annotate names the workload's record on the workload, so a restarted guard finds it.
func (g *Guard) annotate(ctx context.Context, k key, id string) error {
	res, err := g.resource(k)
	if err != nil {
		return err
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, ReleaseAnnotation, id)
	if _, err := res.Patch(ctx, k.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: FieldManager}); err != nil {
		return kube.Classify(err, "annotating "+k.String(), g.kc.Server)
	}
	return nil
}

// holdKnownBad is the loop protection: a template the guard (or a deploy) already rolled back was applied
// again — Argo CD or Flux syncing git, a script re-running. Rolling it back again would fight them forever,
// so the guard holds it for a person and says so.
func (g *Guard) holdKnownBad(ctx context.Context, k key, w client.Object, pol Policy, hash string, revs []revision, records []*release.Record, live *unstructured.Unstructured, prior *release.Record) error {
	rec, err := g.record(ctx, k, w, pol, hash, revs, records, live, func(rec *release.Record) {
		now := time.Now().UTC()
		rec.Outcome, rec.Reason = release.PendingApproval, "KnownBadRevision"
		rec.Message = fmt.Sprintf("%s applied a template that %s rolled back (%s); held instead of rolling back again", rec.DeployedBy, prior.ID, prior.Reason)
		rec.Approval = &release.Approval{RequestedAt: now}
		rec.Timings.FinishedAt = now
	})
	if err != nil {
		return err
	}
	if err := g.annotate(ctx, k, rec.ID); err != nil {
		return err
	}
	g.markHandled(k, hash)
	g.metrics.knownBad.Inc()
	g.metrics.held.Inc()
	g.opts.Notify.Notify(g.notice(notify.GuardHold, rec, nil))
	g.event(w, corev1.EventTypeWarning, "KnownBadRevision",
		"revision %s was rolled back by %s (%s) and was applied again by %s: held, not rolled back in a loop; fix the source (git) or run rollguard approve %s -n %s to roll back",
		hash, prior.ID, prior.Reason, rec.DeployedBy, rec.ID, k.namespace)
	return nil
}

// record writes the release record of a rollout: the workload as it is (live), with the template of the
// revision to return to as its previous state (what a rollback, or `rollguard approve` later, restores).
// The caller then annotates the workload with the record's ID.
//
// The record is written once whole (fill sets what differs from a followed rollout), so nobody reads it
// half-made.
func (g *Guard) record(ctx context.Context, k key, w client.Object, pol Policy, hash string, revs []revision, records []*release.Record, live *unstructured.Unstructured, fill func(*release.Record)) (*release.Record, error) {
	st := g.stateOf(k)
	g.mu.Lock()
	baseline := st.baseline
	g.mu.Unlock()
	var prevTemplate *corev1.PodTemplateSpec
	prevCause := ""
	if target, ok := restoreTarget(revs, hash, baseline); ok {
		prevTemplate, prevCause = &target.Template, target.ChangeCause
	}
	by, changedAt := changedBy(live, prevTemplate)
	cur := podTemplate(w)
	ws := release.WorkloadState{Kind: k.kind, Namespace: k.namespace, Name: k.name, Images: workloadrev.Images(cur.Spec), NewTemplateHash: hash}
	for _, r := range revs {
		if r.Hash == hash {
			ws.NewRevision = r.Number
		}
	}
	obj := release.ObjectState{APIVersion: "apps/v1", Kind: k.kind, Namespace: k.namespace, Name: k.name, Existed: true}
	restoresTo := ""
	if target, ok := restoreTarget(revs, hash, baseline); ok {
		ws.PreviousRevision, ws.PreviousTemplateHash = target.Number, target.Hash
		if r := latestHealthy(records, k, target.Hash); r != nil {
			restoresTo = r.ID
		}
		prev := release.Capture(live)
		tmpl, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&target.Template)
		if err != nil {
			return nil, fmt.Errorf("recording the previous template of %s: %w", k, err)
		}
		if err := unstructured.SetNestedField(prev.Object, tmpl, "spec", "template"); err != nil {
			return nil, fmt.Errorf("recording the previous template of %s: %w", k, err)
		}
		obj.Previous = prev
	}
	// kubectl set image and most tools leave the annotation as it was: then it names an older change.
	cause := live.GetAnnotations()[manifest.ChangeCauseAnnotation]
	if cause == "" || cause == prevCause {
		cause = "pod template changed by " + by + "; seen by rollguard guard"
	}
	rec := &release.Record{
		App: pol.App, Namespace: k.namespace, DeployedBy: by, ChangeCause: cause, ObservedBy: ObservedBy, RestoresTo: restoresTo,
		Objects: []release.ObjectState{obj}, Workloads: []release.WorkloadState{ws}, Outcome: release.Tracking,
		Timings: release.Timings{AppliedAt: changedAt.UTC()},
	}
	if fill != nil {
		fill(rec)
	}
	// The workload names its record, and so does the state a rollback restores: a restarted guard finds it.
	// The ID is the next revision; Create takes the next free one, and the annotation is fixed after if
	// another writer took it first.
	if obj.Previous != nil {
		setAnnotation(obj.Previous, ReleaseAnnotation, nextID(pol.App, records))
	}
	if err := g.store.Create(ctx, rec); err != nil {
		return nil, err
	}
	if obj.Previous != nil && obj.Previous.GetAnnotations()[ReleaseAnnotation] != rec.ID {
		setAnnotation(obj.Previous, ReleaseAnnotation, rec.ID)
		if err := g.store.Update(ctx, rec); err != nil {
			return nil, err
		}
	}
	return rec, nil
}

// nextID is the ID Create will most likely give the app's next record.
func nextID(app string, records []*release.Record) string {
	n := 0
	for _, r := range records {
		n = max(n, r.Revision)
	}
	return release.ID(app, n+1)
}

func setAnnotation(o *unstructured.Unstructured, key, value string) {
	a := o.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[key] = value
	o.SetAnnotations(a)
}

// changedBy names who last changed a workload's pod template (the field manager, e.g. kubectl-set,
// argocd-controller, kustomize-controller, helm) and when; the guard sees only the result of the change.
// managedFields times have one-second resolution, so where images changed, the manager that owns a
// changed image field now decides (an update that changes a field takes it over); otherwise the newest
// manager of any template field.
func changedBy(live *unstructured.Unstructured, prev *corev1.PodTemplateSpec) (string, time.Time) {
	by, at := "unknown", time.Now()
	var newest time.Time
	var paths [][]string
	if prev != nil {
		paths = changedImagePaths(live, prev)
	}
	imageOwner := ""
	for _, m := range live.GetManagedFields() {
		if m.Manager == "kube-controller-manager" || m.Manager == FieldManager || m.Time == nil || m.FieldsV1 == nil {
			continue
		}
		if !strings.Contains(string(m.FieldsV1.Raw), `"f:template"`) {
			continue
		}
		if owns(m.FieldsV1.Raw, paths) && (imageOwner == "" || m.Time.After(newest)) {
			imageOwner, newest = m.Manager, m.Time.Time
			continue
		}
		if imageOwner == "" && m.Time.After(newest) {
			newest, by = m.Time.Time, m.Manager
		}
	}
	if imageOwner != "" {
		by = imageOwner
	}
	if !newest.IsZero() && newest.Before(at) {
		at = newest
	}
	return by, at
}

// changedImagePaths are the managedFields paths of the images that differ from prev's.
func changedImagePaths(live *unstructured.Unstructured, prev *corev1.PodTemplateSpec) [][]string {
	was := map[string]string{}
	for _, c := range append(append([]corev1.Container(nil), prev.Spec.InitContainers...), prev.Spec.Containers...) {
		was[c.Name] = c.Image
	}
	var out [][]string
	for _, field := range []string{"initContainers", "containers"} {
		cs, _, _ := unstructured.NestedSlice(live.Object, "spec", "template", "spec", field)
		for _, c := range cs {
			m, _ := c.(map[string]any)
			name, _ := m["name"].(string)
			image, _ := m["image"].(string)
			if name != "" && was[name] != image {
				out = append(out, []string{"f:spec", "f:template", "f:spec", "f:" + field, fmt.Sprintf(`k:{"name":%q}`, name), "f:image"})
			}
		}
	}
	return out
}

// owns reports whether a managedFields set holds any of the paths.
func owns(raw []byte, paths [][]string) bool {
	if len(paths) == 0 {
		return false
	}
	var set map[string]any
	if json.Unmarshal(raw, &set) != nil {
		return false
	}
	for _, p := range paths {
		node := set
		found := true
		for _, step := range p {
			next, ok := node[step].(map[string]any)
			if !ok {
				found = false
				break
			}
			node = next
		}
		if found {
			return true
		}
	}
	return false
}

// latestFor is the newest record that rolled this workload out to this template.
func latestFor(records []*release.Record, k key, hash string) *release.Record {
	for _, r := range records {
		for _, w := range r.Workloads {
			if w.Kind == k.kind && w.Namespace == k.namespace && w.Name == k.name && w.NewTemplateHash == hash {
				return r
			}
		}
	}
	return nil
}

// latestHealthy is the newest record that rolled this workload out to this template and ended healthy.
func latestHealthy(records []*release.Record, k key, hash string) *release.Record {
	for _, r := range records {
		if r.Outcome != release.Succeeded {
			continue
		}
		for _, w := range r.Workloads {
			if w.Kind == k.kind && w.Namespace == k.namespace && w.Name == k.name && w.NewTemplateHash == hash {
				return r
			}
		}
	}
	return nil
}

// resume runs once per workload after the guard starts: the annotation names the last record the guard
// wrote; a rollback a killed guard left half-done is finished, a rollout that became healthy meanwhile is
// closed. It reports whether it took the workload over.
func (g *Guard) resume(ctx context.Context, k key, w client.Object, pol Policy, hash string, healthy bool) (bool, error) {
	id := w.GetAnnotations()[ReleaseAnnotation]
	if id == "" {
		return false, nil
	}
	rec, err := g.store.Get(ctx, k.namespace, id)
	var nf *release.NotFoundError
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	switch {
	case rec.Outcome == release.RollingBack:
		g.log.Info("finishing a rollback a previous guard left unfinished", "workload", k.String(), "release", rec.ID)
		g.finishRollback(k, hash, rec, pol)
		return true, nil
	case rec.Outcome == release.Tracking && healthy && len(rec.Workloads) > 0 && rec.Workloads[0].NewTemplateHash == hash:
		rec.Workloads[0].Status = "healthy"
		g.metrics.rollouts.WithLabelValues("healthy").Inc()
		return false, g.finish(ctx, rec, release.Succeeded)
	}
	return false, nil
}

// finish stamps a record's outcome and end time.
func (g *Guard) finish(ctx context.Context, rec *release.Record, o release.Outcome) error {
	rec.Outcome = o
	rec.Timings.FinishedAt = time.Now().UTC()
	return g.store.Update(ctx, rec)
}

func (g *Guard) markHandled(k key, hash string) {
	st := g.stateOf(k)
	g.mu.Lock()
	defer g.mu.Unlock()
	if st.handled == nil {
		st.handled = map[string]bool{}
	}
	st.handled[hash] = true
}

// holder identifies the guard in app locks, so a person reading the Lease sees who holds it.
func (g *Guard) holder() string {
	return "rollguard-guard/" + g.opts.Identity
}
