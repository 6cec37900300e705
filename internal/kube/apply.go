package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	corev1 "k8s.io/api/core/v1"
)

// Ref names an object the way users and error messages do: Kind/namespace/name.
func Ref(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return obj.GetKind() + "/" + ns + "/" + obj.GetName()
	}
	return obj.GetKind() + "/" + obj.GetName()
}

// Apply server-side applies obj as field manager rollguard and returns the object the server holds.
// With dryRun the server runs admission and validation (strict: unknown fields are errors) and persists
// nothing, which is how every object is checked before the first real change.
//
// Conflicts are forced: the pipeline is the source of truth for the fields it sets, and a field last
// touched by `kubectl edit` must not block an urgent deploy or rollback.
func (c *Client) Apply(ctx context.Context, obj *unstructured.Unstructured, dryRun bool) (*unstructured.Unstructured, error) {
	return c.apply(ctx, obj, dryRun, true)
}

// ApplyOwned is Apply for an object known to hold no fields of client-side `kubectl apply`: it did not
// exist, or its state recorded just before had no last-applied annotation. It saves the read Apply makes
// to take those fields over, one request per object of a large release.
func (c *Client) ApplyOwned(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	return c.apply(ctx, obj, false, false)
}

func (c *Client) apply(ctx context.Context, obj *unstructured.Unstructured, dryRun, adopt bool) (*unstructured.Unstructured, error) {
	doing := "applying " + Ref(obj)
	if dryRun {
		doing = "validating " + Ref(obj) + " (server-side dry-run)"
	}
	res, err := c.Resource(obj.GroupVersionKind(), obj.GetNamespace())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", doing, err)
	}
	body, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, fmt.Errorf("%s: encoding: %w", doing, err)
	}
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: ptrTrue(), FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	} else if adopt {
		if err := adoptClientSideApply(ctx, res, obj.GetName()); err != nil {
			return nil, Classify(err, doing+": taking over the fields of `kubectl apply`", c.Server)
		}
	}
	out, err := res.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, opts)
	if err != nil && MustReplace(obj, err) {
		// A Job whose pod template changed is a new run: validated as a fresh object, then replaced.
		if dryRun {
			return nil, Classify(dryRunReplacement(ctx, res, obj), doing, c.Server)
		}
		if err := deleteAndWait(ctx, res, obj.GetName()); err != nil {
			return nil, Classify(err, "replacing "+Ref(obj), c.Server)
		}
		return c.Apply(ctx, obj, false)
	}
	if err != nil {
		return nil, Classify(err, doing, c.Server)
	}
	return out, nil
}

// Get returns the live object, or nil when it does not exist.
func (c *Client) Get(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	res, err := c.Resource(obj.GroupVersionKind(), obj.GetNamespace())
	if err != nil {
		return nil, err
	}
	live, err := res.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, Classify(err, "reading "+Ref(obj), c.Server)
	}
	return live, nil
}

// NamespaceExists reports whether a namespace exists.
func (c *Client) NamespaceExists(ctx context.Context, name string) (bool, error) {
	_, err := c.Typed.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, Classify(err, "checking namespace "+name, c.Server)
	}
	return true, nil
}

func ptrTrue() *bool { t := true; return &t }

// WaitEstablished waits for a CRD to be served, then forgets cached discovery so its kind maps.
func (c *Client) WaitEstablished(ctx context.Context, name string) error {
	crds := c.Dynamic.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		crd, err := crds.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, cond := range conds {
			m, _ := cond.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for CustomResourceDefinition %s to be established: %w", name, err)
	}
	if r, ok := c.Mapper.(meta.ResettableRESTMapper); ok {
		r.Reset()
	}
	return nil
}

// DryRunPod asks the API server to create pod without persisting it, so admission (LimitRange defaults,
// PodSecurity, the ServiceAccount, quota, webhooks and policies) judges the pod a workload would create.
// The error is the API server's own, unclassified: the caller names the reason from its message.
func (c *Client) DryRunPod(ctx context.Context, pod *corev1.Pod) error {
	_, err := c.Typed.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	return err
}
