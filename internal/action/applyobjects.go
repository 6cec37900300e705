package action

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/release"
)

// applyObjects applies a release's objects (in apply order) group by group (manifest.Groups): the objects
// of a group at once, within the client's bound, and a group only once the one before is in place, so a
// namespace, a CRD or a ConfigMap exists before what uses it. A CRD is served before its group counts as in
// place. The first failure stops what has not started; the error names the object's file and line.
// applied, if set, is called as each object is applied, with the object the server returned (from several
// goroutines).
func applyObjects(ctx context.Context, c *kube.Client, objs []*manifest.Object, rec *release.Record, log *slog.Logger, applied func(o *manifest.Object, written *unstructured.Unstructured)) error {
	adopt := needsAdoption(rec)
	var first atomic.Bool
	for _, group := range manifest.Groups(objs) {
		var done atomic.Int32
		err := c.ForEach(ctx, len(group), func(ctx context.Context, i int) error {
			o := group[i]
			var out *unstructured.Unstructured
			var err error
			if adopt == nil || adopt[kube.Ref(o.Unstructured)] {
				out, err = c.Apply(ctx, o.Unstructured, false)
			} else {
				out, err = c.ApplyOwned(ctx, o.Unstructured)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", o.Source, err)
			}
			log.Info("applied", "object", kube.Ref(o.Unstructured))
			if first.CompareAndSwap(false, true) {
				crashpoint.Hit("deploy:applying")
			}
			if n := done.Add(1); n == 1 && len(group) > 1 {
				crashpoint.Hit("deploy:mid-group")
			}
			crashpoint.Hit("deploy:applied:" + o.GetKind())
			if applied != nil {
				applied(o, out)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, o := range group {
			if o.GetKind() == "CustomResourceDefinition" {
				if err := c.WaitEstablished(ctx, o.GetName()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// needsAdoption is the set of objects (kube.Ref) whose recorded previous state carries client-side
// `kubectl apply`'s annotation, whose fields server-side apply must take over first. Without a record
// every object is read to find out.
func needsAdoption(rec *release.Record) map[string]bool {
	if rec == nil {
		return nil
	}
	out := map[string]bool{}
	for _, o := range rec.Objects {
		if o.Previous == nil {
			continue
		}
		if _, ok := o.Previous.GetAnnotations()[corev1.LastAppliedConfigAnnotation]; ok {
			out[o.Ref()] = true
		}
	}
	return out
}
