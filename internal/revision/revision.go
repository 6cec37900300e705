// Package revision is the one walk of a workload's revisions as its controller keeps them: a Deployment's
// ReplicaSets (numbered by deployment.kubernetes.io/revision, renumbered on a rollback with the old numbers
// in deployment.kubernetes.io/revision-history), a StatefulSet's or DaemonSet's ControllerRevisions. History,
// undo, the release records' revision numbers and the guard read revisions here; the registry reads the
// templates ControllerRevisions keep (Template).
package revision

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
)

// Annotation is where the Deployment controller numbers a ReplicaSet's revision (and the Deployment's
// current one); HistoryAnnotation keeps the numbers a revision had before a rollback renumbered it.
const (
	Annotation        = "deployment.kubernetes.io/revision"
	HistoryAnnotation = "deployment.kubernetes.io/revision-history"
)

// Revision is one pod template a workload has run.
type Revision struct {
	// Number is the revision number; 0 when the controller has not numbered it (yet).
	Number int64
	// History are earlier numbers of the same revision (Deployments): a rollback to a revision gives it a
	// new number.
	History []int64
	// Hash identifies the template the way release records keep it: the pod-template-hash (Deployments),
	// the ControllerRevision's name (StatefulSets, whose status.updateRevision names it) or its
	// controller-revision-hash (DaemonSets).
	Hash string
	// ChangeCause is the kubernetes.io/change-cause the workload had when this revision was made.
	ChangeCause string
	Created     time.Time
	// Template is the pod template, without the hash label the Deployment controller adds to its copy.
	Template corev1.PodTemplateSpec
}

// Images lists the template's images, init containers first, as release records keep them.
func (r Revision) Images() []string { return Images(r.Template.Spec) }

// Images lists a pod spec's images, init containers first.
func Images(spec corev1.PodSpec) []string {
	var out []string
	for _, c := range spec.InitContainers {
		out = append(out, c.Image)
	}
	for _, c := range spec.Containers {
		out = append(out, c.Image)
	}
	return out
}

// OfReplicaSets are the revisions among rss that the Deployment with uid controls, oldest first.
func OfReplicaSets(uid types.UID, rss []appsv1.ReplicaSet) []Revision {
	var out []Revision
	for i := range rss {
		rs := &rss[i]
		if !ControlledBy(rs, uid) {
			continue
		}
		n, _ := strconv.ParseInt(rs.Annotations[Annotation], 10, 64)
		t := *rs.Spec.Template.DeepCopy()
		// The controller adds the hash label to the ReplicaSet's copy, not to the Deployment's template.
		delete(t.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
		out = append(out, Revision{
			Number: n, History: parseNumbers(rs.Annotations[HistoryAnnotation]), Hash: rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey],
			ChangeCause: rs.Annotations[manifest.ChangeCauseAnnotation], Created: rs.CreationTimestamp.UTC(), Template: t,
		})
	}
	sortOldestFirst(out)
	return out
}

// OfControllerRevisions are the revisions among crs that the StatefulSet or DaemonSet (kind) with uid
// controls, oldest first. A revision whose template cannot be read has an empty Template.
func OfControllerRevisions(kind string, uid types.UID, crs []appsv1.ControllerRevision) []Revision {
	var out []Revision
	for i := range crs {
		cr := &crs[i]
		if !ControlledBy(cr, uid) {
			continue
		}
		t, _ := Template(cr)
		hash := cr.Labels[appsv1.ControllerRevisionHashLabelKey]
		if kind == "StatefulSet" && cr.Name != "" {
			hash = cr.Name // status.updateRevision names the ControllerRevision
		}
		out = append(out, Revision{Number: cr.Revision, Hash: hash, ChangeCause: cr.Annotations[manifest.ChangeCauseAnnotation],
			Created: cr.CreationTimestamp.UTC(), Template: t})
	}
	sortOldestFirst(out)
	return out
}

// Template reads the pod template a ControllerRevision stores: the StatefulSet and DaemonSet controllers
// keep it as a strategic-merge patch, {"spec":{"template":{...,"$patch":"replace"}}}.
func Template(cr *appsv1.ControllerRevision) (corev1.PodTemplateSpec, error) {
	var data struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	err := json.Unmarshal(cr.Data.Raw, &data)
	return data.Spec.Template, err
}

// ControlledBy reports whether obj's controller is the object with uid.
func ControlledBy(obj metav1.Object, uid types.UID) bool {
	ref := metav1.GetControllerOfNoCopy(obj)
	return ref != nil && ref.UID == uid
}

// Workload is a workload's revisions and the one it runs now.
type Workload struct {
	Kind, Namespace, Name string
	// Template is the workload's own pod template (what it asks for now).
	Template corev1.PodTemplateSpec
	// Revisions, oldest first.
	Revisions []Revision
	// Current is the number of the revision the workload runs now: a Deployment's revision annotation, the
	// number of a StatefulSet's status.updateRevision, a DaemonSet's newest; 0 before the controller made
	// one.
	Current int64
	// CurrentHash is the current revision's Hash; for a StatefulSet whose update revision is not listed
	// (yet), the update revision's name.
	CurrentHash string
}

// Read lists the revisions of the Deployment, StatefulSet or DaemonSet kind ns/name. It returns nil and no
// error when the workload does not exist.
func Read(ctx context.Context, c *kube.Client, kind, ns, name string) (*Workload, error) {
	apps := c.Typed.AppsV1()
	doing := "reading the revisions of " + kind + "/" + name
	get := func(err error) error {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return kube.Classify(err, doing, c.Server)
	}
	w := &Workload{Kind: kind, Namespace: ns, Name: name}
	var uid types.UID
	var selector *metav1.LabelSelector
	var updateRevision string
	switch kind {
	case "Deployment":
		d, err := apps.Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, get(err)
		}
		uid, selector, w.Template = d.UID, d.Spec.Selector, d.Spec.Template
		w.Current, _ = strconv.ParseInt(d.Annotations[Annotation], 10, 64)
	case "StatefulSet":
		s, err := apps.StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, get(err)
		}
		uid, selector, w.Template, updateRevision = s.UID, s.Spec.Selector, s.Spec.Template, s.Status.UpdateRevision
	case "DaemonSet":
		d, err := apps.DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, get(err)
		}
		uid, selector, w.Template = d.UID, d.Spec.Selector, d.Spec.Template
	default:
		return nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return w, nil // an invalid selector owns nothing
	}
	list := metav1.ListOptions{LabelSelector: sel.String()}
	if kind == "Deployment" {
		rss, err := apps.ReplicaSets(ns).List(ctx, list)
		if err != nil {
			return nil, kube.Classify(err, doing, c.Server)
		}
		w.Revisions = OfReplicaSets(uid, rss.Items)
	} else {
		crs, err := apps.ControllerRevisions(ns).List(ctx, list)
		if err != nil {
			return nil, kube.Classify(err, doing, c.Server)
		}
		w.Revisions = OfControllerRevisions(kind, uid, crs.Items)
	}
	switch kind {
	case "Deployment":
		if r, ok := w.Number(w.Current); ok && w.Current > 0 {
			w.CurrentHash = r.Hash
		}
	case "StatefulSet":
		w.CurrentHash = updateRevision
		if r, ok := w.ByHash(updateRevision); ok && updateRevision != "" {
			w.Current = r.Number
		}
	case "DaemonSet":
		if len(w.Revisions) > 0 {
			newest := w.Revisions[len(w.Revisions)-1]
			w.Current, w.CurrentHash = newest.Number, newest.Hash
		}
	}
	return w, nil
}

// Number is the revision numbered n now.
func (w *Workload) Number(n int64) (Revision, bool) {
	for _, r := range w.Revisions {
		if r.Number == n {
			return r, true
		}
	}
	return Revision{}, false
}

// ByHash is the revision whose Hash is hash.
func (w *Workload) ByHash(hash string) (Revision, bool) {
	for _, r := range w.Revisions {
		if r.Hash == hash {
			return r, true
		}
	}
	return Revision{}, false
}

// WasNumbered is the revision that is or was numbered n: a rollback to a revision renumbers it and keeps
// the old number in its history, which kubectl's rollbacker does not read.
func (w *Workload) WasNumbered(n int64) (Revision, bool) {
	if r, ok := w.Number(n); ok {
		return r, true
	}
	for _, r := range w.Revisions {
		if slices.Contains(r.History, n) {
			return r, true
		}
	}
	return Revision{}, false
}

// Before is the newest numbered revision before the current one for which keep says yes (nil: any, which is
// what `kubectl rollout undo` returns to).
func (w *Workload) Before(keep func(Revision) bool) (Revision, bool) {
	for i := len(w.Revisions) - 1; i >= 0; i-- {
		r := w.Revisions[i]
		if r.Number > 0 && r.Number < w.Current && (keep == nil || keep(r)) {
			return r, true
		}
	}
	return Revision{}, false
}

func sortOldestFirst(revs []Revision) {
	sort.SliceStable(revs, func(i, j int) bool { return revs[i].Number < revs[j].Number })
}

func parseNumbers(s string) []int64 {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// Current reads the revision a workload runs now and its Hash, for release records' Previous* fields
// (before a release) and New* fields (once its rollout started). It returns 0, "" when the workload does
// not exist, and a revision with an empty hash while the controller has not yet made the ReplicaSet or
// ControllerRevision.
func Current(ctx context.Context, c *kube.Client, kind, namespace, name string) (int64, string, error) {
	w, err := Read(ctx, c, kind, namespace, name)
	if err != nil || w == nil {
		return 0, "", err
	}
	return w.Current, w.CurrentHash, nil
}
