package action

import (
	"context"
	"fmt"
	"sync"

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
	var missing []rbac.Access
	var objects []rbac.Object
	for _, o := range objs {
		r, namespaced, err := resourceOf(c, o, objs)
		if err != nil {
			return err
		}
		obj := rbac.Object{Resource: r, Name: o.GetName(), Workload: track.Trackable(o.GetKind())}
		if namespaced {
			obj.Namespace = o.GetNamespace()
		}
		exists, forbidden, err := exists(ctx, c, o.Unstructured)
		if err != nil {
			return err
		}
		if forbidden {
			missing = append(missing, rbac.Access{Verb: "get", Group: r.Group, Resource: r.Resource, Namespace: obj.Namespace, Name: obj.Name, For: rbac.ForDeploy})
		}
		obj.Exists = exists
		objects = append(objects, obj)
	}
	accesses := rbac.ReleaseAccess(ns, objects, onFailure == OnFailureApprove)
	allowed := make([]bool, len(accesses))
	errs := make([]error, len(accesses))
	// A release of many objects asks a few hundred questions; a few at a time keeps that well under a second.
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, a := range accesses {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			allowed[i], errs[i] = canI(ctx, c, a)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		if apierrors.IsForbidden(err) || apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			d.logger().Warn("cannot ask the cluster what this identity may do; skipping the permission preflight", "error", err)
			return nil
		}
		return kube.Classify(err, "checking permissions ("+accesses[i].String()+")", c.Server)
	}
	for i, ok := range allowed {
		if !ok {
			missing = append(missing, accesses[i])
		}
	}
	if err := rbac.Refusal(missing); err != nil {
		return exitcode.New(exitcode.BadInput, err)
	}
	return nil
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

// exists reads whether an object is live; forbidden says the identity may not even read it.
func exists(ctx context.Context, c *kube.Client, obj *unstructured.Unstructured) (ok, forbidden bool, err error) {
	res, err := c.Resource(obj.GroupVersionKind(), obj.GetNamespace())
	if _, unknown := err.(*kube.UnknownKindError); unknown {
		return false, false, nil // its CRD comes with the release
	}
	if err != nil {
		return false, false, err
	}
	_, err = res.Get(ctx, obj.GetName(), metav1.GetOptions{})
	switch {
	case err == nil:
		return true, false, nil
	case apierrors.IsNotFound(err):
		return false, false, nil
	case apierrors.IsForbidden(err):
		return true, true, nil
	}
	return false, false, kube.Classify(err, "reading "+kube.Ref(obj), c.Server)
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
