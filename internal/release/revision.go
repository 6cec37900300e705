package release

import (
	"context"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rollguard/rollguard/internal/kube"
)

// CurrentRevision reads the revision a workload runs now, for WorkloadState's Previous* fields (before a
// release) and New* fields (once its rollout started): a Deployment's deployment.kubernetes.io/revision and
// the pod-template-hash of the ReplicaSet with that revision; a StatefulSet's status.updateRevision
// (the ControllerRevision's name) and its number; a DaemonSet's newest ControllerRevision and its hash.
// It returns 0, "" when the workload does not exist, and a revision with an empty hash while the
// controller has not yet made the ReplicaSet or ControllerRevision.
func CurrentRevision(ctx context.Context, c *kube.Client, kind, namespace, name string) (int64, string, error) {
	apps := c.Typed.AppsV1()
	doing := "reading the revision of " + kind + "/" + name
	notFound := func(err error) (int64, string, error) {
		if apierrors.IsNotFound(err) {
			return 0, "", nil
		}
		return 0, "", kube.Classify(err, doing, c.Server)
	}
	switch kind {
	case "Deployment":
		d, err := apps.Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return notFound(err)
		}
		rev, _ := strconv.ParseInt(d.Annotations["deployment.kubernetes.io/revision"], 10, 64)
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || rev == 0 {
			return rev, "", nil
		}
		list, err := apps.ReplicaSets(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return rev, "", kube.Classify(err, doing, c.Server)
		}
		for _, rs := range list.Items {
			if ControlledBy(&rs, d.UID) && rs.Annotations["deployment.kubernetes.io/revision"] == d.Annotations["deployment.kubernetes.io/revision"] {
				return rev, rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey], nil
			}
		}
		return rev, "", nil
	case "StatefulSet":
		s, err := apps.StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return notFound(err)
		}
		if s.Status.UpdateRevision == "" {
			return 0, "", nil
		}
		cr, err := apps.ControllerRevisions(namespace).Get(ctx, s.Status.UpdateRevision, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return 0, s.Status.UpdateRevision, nil
			}
			return 0, "", kube.Classify(err, doing, c.Server)
		}
		return cr.Revision, cr.Name, nil
	case "DaemonSet":
		d, err := apps.DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return notFound(err)
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			return 0, "", nil
		}
		list, err := apps.ControllerRevisions(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return 0, "", kube.Classify(err, doing, c.Server)
		}
		var rev int64
		var hash string
		for _, cr := range list.Items {
			if ControlledBy(&cr, d.UID) && cr.Revision > rev {
				rev, hash = cr.Revision, cr.Labels[appsv1.ControllerRevisionHashLabelKey]
			}
		}
		return rev, hash, nil
	}
	return 0, "", nil
}

// ControlledBy reports whether obj's controller is the object with uid.
func ControlledBy(obj metav1.Object, uid types.UID) bool {
	ref := metav1.GetControllerOfNoCopy(obj)
	return ref != nil && ref.UID == uid
}

// WorkloadRef names a workload.
type WorkloadRef struct{ Kind, Namespace, Name string }

// Revision is a workload's revision number and template hash, as CurrentRevision reads them.
type Revision struct {
	Number int64
	Hash   string
}

// manyDeployments is how many Deployments of one namespace make two lists (its Deployments and
// ReplicaSets) cheaper than two requests for each.
const manyDeployments = 20

// CurrentRevisions is CurrentRevision for many workloads, in their order, a bounded number at a time; the
// Deployments of a namespace holding many are read with two lists instead.
func CurrentRevisions(ctx context.Context, c *kube.Client, refs []WorkloadRef) ([]Revision, error) {
	out := make([]Revision, len(refs))
	perNS := map[string]int{}
	for _, r := range refs {
		if r.Kind == "Deployment" {
			perNS[r.Namespace]++
		}
	}
	listed := map[string]map[string]Revision{}
	for ns, n := range perNS {
		if n < manyDeployments {
			continue
		}
		revs, err := deploymentRevisions(ctx, c, ns)
		if err != nil {
			return nil, err
		}
		if revs != nil {
			listed[ns] = revs
		}
	}
	err := c.ForEach(ctx, len(refs), func(ctx context.Context, i int) error {
		r := refs[i]
		if revs, ok := listed[r.Namespace]; ok && r.Kind == "Deployment" {
			out[i] = revs[r.Name]
			return nil
		}
		var err error
		out[i].Number, out[i].Hash, err = CurrentRevision(ctx, c, r.Kind, r.Namespace, r.Name)
		return err
	})
	return out, err
}

// deploymentRevisions reads the revision of every Deployment of a namespace with two lists; nil, nil when
// this identity may not list them.
func deploymentRevisions(ctx context.Context, c *kube.Client, ns string) (map[string]Revision, error) {
	apps := c.Typed.AppsV1()
	ds, err := apps.Deployments(ns).List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) {
		return nil, nil
	}
	if err != nil {
		return nil, kube.Classify(err, "listing the Deployments of "+ns, c.Server)
	}
	rss, err := apps.ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) {
		return nil, nil
	}
	if err != nil {
		return nil, kube.Classify(err, "listing the ReplicaSets of "+ns, c.Server)
	}
	byOwner := map[types.UID][]*appsv1.ReplicaSet{}
	for i := range rss.Items {
		if ref := metav1.GetControllerOfNoCopy(&rss.Items[i]); ref != nil {
			byOwner[ref.UID] = append(byOwner[ref.UID], &rss.Items[i])
		}
	}
	out := make(map[string]Revision, len(ds.Items))
	for _, d := range ds.Items {
		annotation := d.Annotations["deployment.kubernetes.io/revision"]
		rev, _ := strconv.ParseInt(annotation, 10, 64)
		r := Revision{Number: rev}
		for _, rs := range byOwner[d.UID] {
			if rev != 0 && rs.Annotations["deployment.kubernetes.io/revision"] == annotation {
				r.Hash = rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
			}
		}
		out[d.Name] = r
	}
	return out, nil
}
