package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
)

// MustReplace reports whether err refuses a change to obj that only deleting and re-creating it can make:
// a Job's pod template (and selector) are immutable, yet a changed migration Job is a new run that must
// happen. Only Jobs: replacing anything else (a Service, a StatefulSet's volume claims) would lose state.
func MustReplace(obj *unstructured.Unstructured, err error) bool {
	gvk := obj.GroupVersionKind()
	return gvk.Group == "batch" && gvk.Kind == "Job" && apierrors.IsInvalid(err) && strings.Contains(err.Error(), "field is immutable")
}

// dryRunReplacement validates obj as the object that will replace the live one: a server-side dry-run
// create under a generated name, so schema, admission and quota are checked without touching the live Job.
func dryRunReplacement(ctx context.Context, res dynamic.ResourceInterface, obj *unstructured.Unstructured) error {
	tmp := obj.DeepCopy()
	tmp.SetGenerateName(obj.GetName() + "-")
	tmp.SetName("")
	tmp.SetResourceVersion("")
	_, err := res.Create(ctx, tmp, metav1.CreateOptions{FieldManager: FieldManager, DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
	return err
}

// Recreate deletes the live object (its pods with it), waits until it is gone and creates obj in its
// place: how a rollback puts back a Job that a release replaced.
func (c *Client) Recreate(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	doing := "replacing " + Ref(obj)
	res, err := c.Resource(obj.GroupVersionKind(), obj.GetNamespace())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", doing, err)
	}
	if err := deleteAndWait(ctx, res, obj.GetName()); err != nil {
		return nil, Classify(err, doing, c.Server)
	}
	next := obj.DeepCopy()
	next.SetResourceVersion("")
	next.SetUID("")
	forgetGeneratedSelector(next)
	out, err := res.Create(ctx, next, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil {
		return nil, Classify(err, doing, c.Server)
	}
	return out, nil
}

func deleteAndWait(ctx context.Context, res dynamic.ResourceInterface, name string) error {
	policy := metav1.DeletePropagationBackground
	if err := res.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := res.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil && !errors.Is(err, context.Canceled) && wait.Interrupted(err) {
		return fmt.Errorf("%s was not deleted within a minute (a finalizer?)", name)
	}
	return err
}

// forgetGeneratedSelector removes the selector the API server generated for a Job (it names the old Job's
// UID), so the re-created Job gets its own; a Job with manualSelector keeps its selector.
func forgetGeneratedSelector(job *unstructured.Unstructured) {
	if job.GetKind() != "Job" {
		return
	}
	if manual, _, _ := unstructured.NestedBool(job.Object, "spec", "manualSelector"); manual {
		return
	}
	unstructured.RemoveNestedField(job.Object, "spec", "selector")
	for _, l := range []string{"controller-uid", "batch.kubernetes.io/controller-uid"} {
		unstructured.RemoveNestedField(job.Object, "spec", "template", "metadata", "labels", l)
	}
}
