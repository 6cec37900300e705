package track

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/kube"
)

// Custom resources of a release (cert-manager Certificates, ExternalSecrets, Argo Rollouts, ...) are followed
// by one dynamic informer per resource type and namespace; diagnose judges them the kstatus way.

// UntrackedAnnotation set to "false" on a custom resource leaves it out of tracking: the release does not
// wait for it (for a resource whose controller is slow, or that never reports readiness truthfully).
const UntrackedAnnotation = "rollguard.dev/track"

// builtinGroups are the API groups Kubernetes itself serves; every other group is a custom resource's.
var builtinGroups = map[string]bool{
	"": true, "apps": true, "batch": true, "autoscaling": true, "policy": true, "networking.k8s.io": true,
	"rbac.authorization.k8s.io": true, "storage.k8s.io": true, "apiextensions.k8s.io": true,
	"admissionregistration.k8s.io": true, "scheduling.k8s.io": true, "coordination.k8s.io": true,
	"discovery.k8s.io": true, "node.k8s.io": true, "certificates.k8s.io": true,
	"flowcontrol.apiserver.k8s.io": true, "resource.k8s.io": true, "events.k8s.io": true,
	"apiregistration.k8s.io": true, "authentication.k8s.io": true, "authorization.k8s.io": true,
	"internal.apiserver.k8s.io": true, "storagemigration.k8s.io": true,
}

// Followed reports whether a release object is a custom resource rollguard follows: namespaced, of a group
// Kubernetes does not serve itself, and not annotated rollguard.dev/track: "false".
func Followed(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return !builtinGroups[gvk.Group] && o.GetNamespace() != "" && !strings.EqualFold(o.GetAnnotations()[UntrackedAnnotation], "false")
}

// custom reports whether a target is a custom resource.
func (t Target) custom() bool {
	return t.APIVersion != "" && !Trackable(schema.FromAPIVersionAndKind(t.APIVersion, t.Kind).GroupKind())
}

// customCaches holds one informer per custom resource type and namespace.
type customCaches map[string]cache.SharedIndexInformer

func customKey(ns string, gvr schema.GroupVersionResource) string { return ns + "|" + gvr.String() }

func startCustom(ctx context.Context, c *kube.Client, targets []Target, notify func()) (customCaches, map[Target]string, error) {
	caches := customCaches{}
	keys := map[Target]string{}
	for _, t := range targets {
		if !t.custom() {
			continue
		}
		m, err := c.Mapping(schema.FromAPIVersionAndKind(t.APIVersion, t.Kind))
		if err != nil {
			return nil, nil, err
		}
		key := customKey(t.Namespace, m.Resource)
		keys[t] = key
		if caches[key] != nil {
			continue
		}
		f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(c.Dynamic, 0, t.Namespace, nil)
		inf := f.ForResource(m.Resource).Informer()
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { notify() },
			UpdateFunc: func(any, any) { notify() },
			DeleteFunc: func(any) { notify() },
		}); err != nil {
			return nil, nil, fmt.Errorf("watching %s in %s: %w", m.Resource.Resource, t.Namespace, err)
		}
		f.Start(ctx.Done())
		for _, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return nil, nil, fmt.Errorf("watching %s in %s: cache did not sync", m.Resource.Resource, t.Namespace)
			}
		}
		caches[key] = inf
	}
	return caches, keys, nil
}

// input is the custom resource as the diagnosis reads it: the object alone.
func (cc customCaches) input(key string, t Target) diagnose.Input {
	var in diagnose.Input
	if u, ok := get[*unstructured.Unstructured](cc[key], t.Namespace+"/"+t.Name); ok {
		in.Workload = u.DeepCopy()
	}
	return in
}
