package kube

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/csaupgrade"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// lastApplied is the field client-side apply (`kubectl apply` without --server-side) writes on every apply.
var lastApplied = fieldpath.NewSet(fieldpath.MakePathOrDie("metadata", "annotations", corev1.LastAppliedConfigAnnotation))

// adoptClientSideApply hands the fields that client-side apply manages over to rollguard's server-side
// apply, as `kubectl apply --server-side` does. Without it those fields stay owned by the client-side
// manager, and a field removed from the manifest (an env var, a label) is never removed from the cluster.
// The managers to upgrade are the Update managers that own the last-applied annotation.
func adoptClientSideApply(ctx context.Context, res dynamic.ResourceInterface, name string) error {
	for attempt := 0; attempt < 5; attempt++ {
		live, err := res.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, ok := live.GetAnnotations()[corev1.LastAppliedConfigAnnotation]; !ok {
			return nil
		}
		managers := sets.New[string]()
		for _, e := range csaupgrade.FindFieldsOwners(live.GetManagedFields(), metav1.ManagedFieldsOperationUpdate, lastApplied) {
			managers.Insert(e.Manager)
		}
		if managers.Len() == 0 {
			return nil
		}
		patch, err := csaupgrade.UpgradeManagedFieldsPatch(live, managers, FieldManager)
		if err != nil || patch == nil {
			return err
		}
		// The patch tests the resourceVersion it was computed from: a conflict means read again.
		_, err = res.Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return nil
}
