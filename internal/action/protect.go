package action

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rollguard/rollguard/internal/config"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/registry"
	"github.com/rollguard/rollguard/internal/release"
)

// EnvironmentImages is what image pruning must keep for every environment of a config: the images each
// environment runs or can roll back to through its ReplicaSets, and every image a recorded release there
// deployed or would restore. An environment that cannot be read is an error: pruning blind could delete an
// image production needs.
func EnvironmentImages(ctx context.Context, cfg *config.Config, connect EnvConnector) ([]registry.Protection, error) {
	var out []registry.Protection
	for _, name := range cfg.Names() {
		env, err := cfg.Env(name)
		if err != nil {
			return nil, err
		}
		c, err := connect(ctx, env)
		if err != nil {
			return nil, fmt.Errorf("reading the images of environment %s: %w", name, err)
		}
		running, err := registry.InUse(ctx, c, env.Namespace)
		if err != nil {
			return nil, fmt.Errorf("reading the images of environment %s: %w", name, err)
		}
		for _, p := range running {
			p.Why = "environment " + name + ": " + p.Why
			out = append(out, p)
		}
		recorded, err := ReleaseImages(ctx, c, env.Namespace)
		if err != nil {
			return nil, fmt.Errorf("reading the release records of environment %s: %w", name, err)
		}
		for _, p := range recorded {
			p.Why = "environment " + name + ": " + p.Why
			out = append(out, p)
		}
	}
	return out, nil
}

// ReleaseImages lists the images of every release recorded in a namespace: those it deployed, and those in
// the previous state it would restore on rollback — which may exist nowhere else once the ReplicaSet
// history is gone.
func ReleaseImages(ctx context.Context, c *kube.Client, ns string) ([]registry.Protection, error) {
	recs, err := release.NewStore(c).List(ctx, ns, "")
	if err != nil {
		return nil, err
	}
	var out []registry.Protection
	for _, rec := range recs {
		for _, w := range rec.Workloads {
			for _, img := range w.Images {
				out = append(out, registry.Protection{Ref: img, Why: "deployed by release " + rec.ID})
			}
		}
		for _, o := range rec.Objects {
			for _, img := range templateImages(o.Previous) {
				out = append(out, registry.Protection{Ref: img, Why: "rollback target of release " + rec.ID + " (" + o.Ref() + ")"})
			}
		}
	}
	return out, nil
}

// templateImages reads container images from an object's pod template (manifest.PodSpecPath). A custom
// resource may carry a pod template where the built-in workloads do (an Argo Rollout's spec.template): its
// images are read from those places too, because these images are kept from pruning and reported, and
// keeping an image too many is safe where deleting one a rollback needs is not.
func templateImages(obj *unstructured.Unstructured) []string {
	if obj == nil {
		return nil
	}
	paths := [][]string{manifest.PodSpecPath(obj.GroupVersionKind().GroupKind())}
	if paths[0] == nil {
		paths = [][]string{{"spec", "template", "spec"}, {"spec", "jobTemplate", "spec", "template", "spec"}, {"spec"}}
	}
	var out []string
	for _, spec := range paths {
		for _, field := range []string{"initContainers", "containers"} {
			cs, _, _ := unstructured.NestedSlice(obj.Object, append(slices.Clone(spec), field)...)
			for _, c := range cs {
				if m, ok := c.(map[string]any); ok {
					if img, ok := m["image"].(string); ok && img != "" {
						out = append(out, img)
					}
				}
			}
		}
	}
	return out
}

// imagesOf is the container images of one object of the release.
func imagesOf(objs []*manifest.Object, kind, ns, name string) []string {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == ns && o.GetName() == name {
			return templateImages(o.Unstructured)
		}
	}
	return nil
}
