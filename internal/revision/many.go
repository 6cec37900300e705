package revision

import (
	"context"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rollguard/rollguard/internal/kube"
)

// Ref names a workload.
type Ref struct{ Kind, Namespace, Name string }

// Now is the revision a workload runs now, its number and Hash, as Current reads them.
type Now struct {
	Number int64
	Hash   string
}

// manyDeployments is how many Deployments of one namespace make two lists (its Deployments and
// ReplicaSets) cheaper than two requests for each.
const manyDeployments = 20

// CurrentOf is Current for many workloads, in their order, a bounded number at a time; the
// Deployments of a namespace holding many are read with two lists instead.
func CurrentOf(ctx context.Context, c *kube.Client, refs []Ref) ([]Now, error) {
	out := make([]Now, len(refs))
	perNS := map[string]int{}
	for _, r := range refs {
		if r.Kind == "Deployment" {
			perNS[r.Namespace]++
		}
	}
	listed := map[string]map[string]Now{}
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
		out[i].Number, out[i].Hash, err = Current(ctx, c, r.Kind, r.Namespace, r.Name)
		return err
	})
	return out, err
}

// deploymentRevisions reads the revision of every Deployment of a namespace with two lists; nil, nil when
// this identity may not list them.
func deploymentRevisions(ctx context.Context, c *kube.Client, ns string) (map[string]Now, error) {
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
	out := make(map[string]Now, len(ds.Items))
	for i := range ds.Items {
		out[ds.Items[i].Name] = OfDeployment(&ds.Items[i], byOwner[ds.Items[i].UID])
	}
	return out, nil
}

// OfCachedDeployment is OfDeployment for d and rss read from a cache, which may lag the controller:
// settled only when the controller has synced d's generation (it numbers the new ReplicaSet and the
// Deployment in one sync before it records the generation as observed) and the revision is the highest
// of d's ReplicaSets, as a new one's is.
func OfCachedDeployment(d *appsv1.Deployment, rss []appsv1.ReplicaSet) (r Now, settled bool) {
	if d.Status.ObservedGeneration < d.Generation {
		return Now{}, false
	}
	owned := make([]*appsv1.ReplicaSet, 0, len(rss))
	highest := int64(0)
	for i := range rss {
		if ControlledBy(&rss[i], d.UID) {
			owned = append(owned, &rss[i])
			n, _ := strconv.ParseInt(rss[i].Annotations[Annotation], 10, 64)
			highest = max(highest, n)
		}
	}
	r = OfDeployment(d, owned)
	return r, r.Number == highest && r.Hash != ""
}

// OfDeployment is the revision Deployment d runs now, as Current reads it, from its ReplicaSets (others in
// rss are skipped): a caller holding both in a cache needs no request.
func OfDeployment(d *appsv1.Deployment, rss []*appsv1.ReplicaSet) Now {
	annotation := d.Annotations[Annotation]
	rev, _ := strconv.ParseInt(annotation, 10, 64)
	r := Now{Number: rev}
	for _, rs := range rss {
		if rev != 0 && rs.Annotations[Annotation] == annotation && ControlledBy(rs, d.UID) {
			r.Hash = rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		}
	}
	return r
}
