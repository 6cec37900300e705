package action

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
)

// validate checks every object against the cluster without changing anything: namespaces exist (or come
// with the release), and a server-side dry-run accepts each object (schema, unknown fields, admission,
// quota, permissions).
func (d *Deploy) validate(ctx context.Context, c *kube.Client, objs []*manifest.Object, crds map[schema.GroupKind]bool) error {
	created := map[string]bool{}
	for _, o := range objs {
		if o.GetKind() == "Namespace" && o.GroupVersionKind().Group == "" {
			created[o.GetName()] = true
		}
	}
	exists := map[string]bool{}
	for _, o := range objs {
		ns := o.GetNamespace()
		if ns == "" || created[ns] {
			continue
		}
		ok, seen := exists[ns]
		if !seen {
			var err error
			if ok, err = c.NamespaceExists(ctx, ns); err != nil {
				return err
			}
			exists[ns] = ok
		}
		if !ok {
			return exitcode.BadInputf("%s: namespace %q does not exist: create it, or add a Namespace object to the manifests", o.Source, ns)
		}
	}
	// Every object is dry-run, a bounded number at a time, and every failure kept, so the report names
	// the same first bad object whichever request finished first, and how many others failed.
	errs := make([]error, len(objs))
	err := c.ForEach(ctx, len(objs), func(ctx context.Context, i int) error {
		o := objs[i]
		// Objects inside a namespace, or of a kind, that the release itself creates cannot be dry-run
		// before their parent exists; the apiserver validates them when they are applied.
		if created[o.GetNamespace()] || crds[o.GroupVersionKind().GroupKind()] {
			return nil
		}
		if _, err := c.Apply(ctx, o.Unstructured, true); err != nil {
			errs[i] = fmt.Errorf("%s: %w", o.Source, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return keepCode(failed[0])
	default:
		return keepCode(fmt.Errorf("%w (and %d more objects failed validation; nothing was applied)", failed[0], len(failed)-1))
	}
}

// keepCode makes sure a validation failure carries an exit code: 3 unless the error already says 4.
func keepCode(err error) error {
	var ec *exitcode.Error
	if errors.As(err, &ec) {
		return &exitcode.Error{Code: ec.Code, Err: err}
	}
	return exitcode.New(exitcode.BadInput, err)
}

// crdScopes maps each group/kind defined by a CRD in the release to whether it is namespaced.
func crdScopes(objs []*manifest.Object) map[schema.GroupKind]bool {
	out := map[schema.GroupKind]bool{}
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
		scope, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
		out[schema.GroupKind{Group: group, Kind: kind}] = scope != "Cluster"
	}
	return out
}
