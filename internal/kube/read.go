package kube

import (
	"context"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// listFrom is how many objects of one kind in one namespace make one list cheaper than reading each: a
// release of 1,000 Deployments is read in one request, a release of three ConfigMaps in a namespace of
// thousands still object by object.
const listFrom = 20

// Live is what GetAll found of one object: nil when it does not exist (or its kind is not served yet, as
// for a CRD that comes with the release); Forbidden when this identity may not read it.
type Live struct {
	Object    *unstructured.Unstructured
	Forbidden bool
}

// GetAll reads the live state of objs, in their order: many objects of one kind in one namespace with one
// list, the others Workers() at a time. A list this identity may not make falls back to reading each.
func (c *Client) GetAll(ctx context.Context, objs []*unstructured.Unstructured) ([]Live, error) {
	type key struct {
		gvk schema.GroupVersionKind
		ns  string
	}
	groups := map[key][]int{}
	for i, o := range objs {
		k := key{o.GroupVersionKind(), o.GetNamespace()}
		groups[k] = append(groups[k], i)
	}
	out := make([]Live, len(objs))
	var mu sync.Mutex
	var single []int
	for k, idx := range groups {
		if len(idx) < listFrom {
			single = append(single, idx...)
			continue
		}
		listed, err := c.listByName(ctx, k.gvk, k.ns)
		if err != nil {
			return nil, err
		}
		if listed == nil {
			single = append(single, idx...) // not allowed to list: read each
			continue
		}
		for _, i := range idx {
			out[i].Object = listed[objs[i].GetName()]
		}
	}
	err := c.ForEach(ctx, len(single), func(ctx context.Context, j int) error {
		i := single[j]
		live, forbidden, err := c.getOne(ctx, objs[i])
		mu.Lock()
		out[i] = Live{Object: live, Forbidden: forbidden}
		mu.Unlock()
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// listByName lists a kind in a namespace by name; nil, nil when the kind is not served or the list is
// forbidden.
func (c *Client) listByName(ctx context.Context, gvk schema.GroupVersionKind, ns string) (map[string]*unstructured.Unstructured, error) {
	res, err := c.Resource(gvk, ns)
	if _, unknown := err.(*UnknownKindError); unknown {
		return map[string]*unstructured.Unstructured{}, nil
	}
	if err != nil {
		return nil, err
	}
	list, err := res.List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err) {
		return nil, nil
	}
	if err != nil {
		return nil, Classify(err, "listing "+gvk.Kind+" in "+ns, c.Server)
	}
	out := make(map[string]*unstructured.Unstructured, len(list.Items))
	for i := range list.Items {
		item := &list.Items[i]
		item.SetAPIVersion(gvk.GroupVersion().String())
		item.SetKind(gvk.Kind)
		out[item.GetName()] = item
	}
	return out, nil
}

// getOne reads one object: nil when it does not exist or its kind is not served yet.
func (c *Client) getOne(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, bool, error) {
	res, err := c.Resource(obj.GroupVersionKind(), obj.GetNamespace())
	if _, unknown := err.(*UnknownKindError); unknown {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	live, err := res.Get(ctx, obj.GetName(), metav1.GetOptions{})
	switch {
	case err == nil:
		return live, false, nil
	case apierrors.IsNotFound(err):
		return nil, false, nil
	case apierrors.IsForbidden(err):
		return nil, true, nil
	}
	return nil, false, Classify(err, "reading "+Ref(obj), c.Server)
}
