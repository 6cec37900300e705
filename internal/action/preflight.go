package action

import (
	"context"
	"fmt"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/rbac"
	"github.com/rollguard/rollguard/internal/track"
)

// preflight refuses, before anything changes, a deploy this identity could not finish or could not roll
// back: the server-side dry-run proves it may apply each object, but not that it may delete what the
// release creates, replace what it changes, record the release or take the lock. Each access is asked with
// a SelfSubjectAccessReview, which every authenticated user may create (ClusterRole system:basic-user);
// where a cluster does not answer them, the check is skipped with a warning rather than blocking deploys.
func (d *Deploy) preflight(ctx context.Context, c *kube.Client, ns string, objs []*manifest.Object, onFailure OnFailure) error {
	raw := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		raw[i] = o.Unstructured
	}
	lives, err := c.GetAll(ctx, raw)
	if err != nil {
		return err
	}
	objects := make([]rbac.Object, len(objs))
	var missing []rbac.Access
	for i, o := range objs {
		r, namespaced, err := resourceOf(c, o, objs)
		if err != nil {
			return err
		}
		obj := rbac.Object{Resource: r, Name: o.GetName(), Workload: track.Trackable(o.GroupVersionKind().GroupKind())}
		if namespaced {
			obj.Namespace = o.GetNamespace()
		}
		// An object this identity may not read is taken to exist: a rollback would have to replace it.
		obj.Exists = lives[i].Object != nil || lives[i].Forbidden
		if lives[i].Forbidden {
			missing = append(missing, rbac.Access{Verb: "get", Group: r.Group, Resource: r.Resource, Namespace: obj.Namespace, Name: obj.Name, For: rbac.ForDeploy})
		}
		objects[i] = obj
	}
	accesses := rbac.ReleaseAccess(ns, objects, onFailure == OnFailureApprove)
	denied, err := deniedOf(ctx, c, accesses)
	if err != nil {
		if apierrors.IsForbidden(err) || apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			d.logger().Warn("cannot ask the cluster what this identity may do; skipping the permission preflight", "error", err)
			return nil
		}
		return err
	}
	// Refused for the whole kind: a role may still grant it on the release's objects by name.
	var named []rbac.Access
	for _, a := range denied {
		if n := rbac.Named(a, objects); n != nil {
			named = append(named, n...)
		} else {
			missing = append(missing, a)
		}
	}
	deniedByName, err := deniedOf(ctx, c, named)
	if err != nil {
		return err
	}
	if err := rbac.Refusal(append(missing, deniedByName...)); err != nil {
		return exitcode.New(exitcode.BadInput, err)
	}
	return nil
}

// deniedOf asks about each access, a bounded number at a time, and returns those refused. An error is
// the first question the cluster would not answer, classified unless it says reviews cannot be asked at
// all (forbidden, not served), which the caller turns into a skipped preflight.
func deniedOf(ctx context.Context, c *kube.Client, accesses []rbac.Access) ([]rbac.Access, error) {
	allowed := make([]bool, len(accesses))
	err := c.ForEach(ctx, len(accesses), func(ctx context.Context, i int) error {
		var err error
		allowed[i], err = canI(ctx, c, accesses[i])
		return err
	})
	if err != nil {
		if apierrors.IsForbidden(err) || apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			return nil, err
		}
		return nil, kube.Classify(err, "checking permissions", c.Server)
	}
	var denied []rbac.Access
	for i, ok := range allowed {
		if !ok {
			denied = append(denied, accesses[i])
		}
	}
	return denied, nil
}

// resourceOf maps an object to its resource; a kind defined by a CRD of the same release is not served yet,
// so its CRD says.
func resourceOf(c *kube.Client, o *manifest.Object, objs []*manifest.Object) (rbac.Resource, bool, error) {
	gvk := o.GroupVersionKind()
	m, err := c.Mapping(gvk)
	if err == nil {
		return rbac.Resource{Group: m.Resource.Group, Resource: m.Resource.Resource}, m.Scope.Name() == meta.RESTScopeNameNamespace, nil
	}
	for _, crd := range objs {
		if crd.GetKind() != "CustomResourceDefinition" {
			continue
		}
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
		scope, _, _ := unstructured.NestedString(crd.Object, "spec", "scope")
		if (schema.GroupKind{Group: group, Kind: kind}) == gvk.GroupKind() {
			return rbac.Resource{Group: group, Resource: plural}, scope != "Cluster", nil
		}
	}
	return rbac.Resource{}, false, err
}

// canI asks the API server whether this identity may do one thing.
func canI(ctx context.Context, c *kube.Client, a rbac.Access) (bool, error) {
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: a.Namespace, Verb: a.Verb, Group: a.Group, Resource: a.Resource, Subresource: a.Subresource, Name: a.Name,
		},
	}}
	out, err := c.Typed.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("asking whether this identity may %s: %w", a, err)
	}
	return out.Status.Allowed, nil
}
