package manifest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/oneline"
)

// PodSpecPath is the field path of the pod spec inside objects of a kind, or nil when the kind runs no pods.
// Only built-in groups count: a custom resource named Deployment is not one. Every package asks here where
// an object's pod template is (images, environments, promotion, previous images, protection).
func PodSpecPath(gk schema.GroupKind) []string {
	switch gk {
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}, schema.GroupKind{Group: "apps", Kind: "StatefulSet"},
		schema.GroupKind{Group: "apps", Kind: "DaemonSet"}, schema.GroupKind{Group: "apps", Kind: "ReplicaSet"},
		schema.GroupKind{Group: "batch", Kind: "Job"}, schema.GroupKind{Kind: "ReplicationController"}:
		return []string{"spec", "template", "spec"}
	case schema.GroupKind{Group: "batch", Kind: "CronJob"}:
		return []string{"spec", "jobTemplate", "spec", "template", "spec"}
	case schema.GroupKind{Kind: "PodTemplate"}:
		return []string{"template", "spec"}
	case schema.GroupKind{Kind: "Pod"}:
		return []string{"spec"}
	}
	return nil
}

// PodSpec reads the pod spec of u, which has one when PodSpecPath of its kind is not nil (found false
// otherwise).
func PodSpec(u *unstructured.Unstructured) (spec corev1.PodSpec, found bool, err error) {
	path := PodSpecPath(u.GroupVersionKind().GroupKind())
	if path == nil {
		return spec, false, nil
	}
	m, _, err := unstructured.NestedMap(u.Object, path...)
	if err == nil {
		err = runtime.DefaultUnstructuredConverter.FromUnstructured(m, &spec)
	}
	if err != nil {
		return spec, true, fmt.Errorf("reading the pod template of %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return spec, true, nil
}

// container is one container entry of an object's pod spec, edited in place.
type container struct {
	list string // "initContainers" or "containers"
	name string
	m    map[string]any
}

// containers returns the init containers and containers of the object's pod spec, if it has one.
// Entries that are not mappings are skipped; the server-side dry-run reports them.
func containers(o *Object) []container {
	path := PodSpecPath(o.groupKind())
	if path == nil {
		return nil
	}
	var out []container
	for _, list := range []string{"initContainers", "containers"} {
		v, found, err := unstructured.NestedFieldNoCopy(o.Object, append(slices.Clone(path), list)...)
		if !found || err != nil {
			continue
		}
		items, _ := v.([]any)
		for _, it := range items {
			if m, ok := it.(map[string]any); ok {
				n, _ := m["name"].(string)
				out = append(out, container{list: list, name: n, m: m})
			}
		}
	}
	return out
}

// SetImages sets container images like `kubectl set image`: each spec is CONTAINER=IMAGE, or *=IMAGE for
// every container; a named spec wins over *. It edits the init containers and containers of the pod
// templates of Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs, CronJobs,
// PodTemplates and Pods. A spec that names no container of any object is a bad-input error listing the
// containers that exist. Nothing is changed when an error is returned.
func SetImages(objs []*Object, specs []string) error {
	if len(specs) == 0 {
		return nil
	}
	byName := make(map[string]string, len(specs))
	var order []string
	for _, s := range specs {
		c, ref, ok := strings.Cut(s, "=")
		c, ref = strings.TrimSpace(c), strings.TrimSpace(ref)
		if !ok || c == "" || ref == "" {
			return exitcode.BadInputf("malformed --image %q: use CONTAINER=IMAGE (e.g. web=registry.example.com/web:1.2.3) or *=IMAGE for every container", s)
		}
		if _, err := name.ParseReference(ref); err != nil {
			return exitcode.BadInputf("--image %q: %q is not a valid image reference (%s); use e.g. registry.example.com/web:1.2.3", s, ref, oneline.Fold(err.Error()))
		}
		if _, dup := byName[c]; dup {
			return exitcode.BadInputf("--image names container %q twice; give each container once", c)
		}
		byName[c] = ref
		order = append(order, c)
	}

	var all []container
	exists := map[string]bool{}
	for _, o := range objs {
		for _, c := range containers(o) {
			all = append(all, c)
			exists[c.name] = true
		}
	}
	for _, c := range order {
		if c == "*" {
			if len(all) == 0 {
				return exitcode.BadInputf("--image *=%s: the manifests have no containers to set", byName[c])
			}
			continue
		}
		if !exists[c] {
			names := make([]string, 0, len(exists))
			for n := range exists {
				names = append(names, n)
			}
			slices.Sort(names)
			have := "there are no containers"
			if len(names) > 0 {
				have = "containers are: " + strings.Join(names, ", ")
			}
			return exitcode.BadInputf("--image %s=%s: no container named %q in the manifests; %s", c, byName[c], c, have)
		}
	}
	for _, c := range all {
		if ref, ok := byName[c.name]; ok {
			c.m["image"] = ref
		} else if ref, ok := byName["*"]; ok {
			c.m["image"] = ref
		}
	}
	return nil
}

// DefaultMutableTags are the tags CheckImageTags refuses unless mutable tags are allowed: tags that by
// convention move to newer images, so a rollback or a rescheduled pod may run different code.
func DefaultMutableTags() []string {
	return []string{"latest", "main", "master", "stable", "dev", "edge", "nightly"}
}

// CheckImageTags refuses containers whose image has no tag and no digest (the runtime would pull
// "latest") or a mutable tag, unless allowMutable. mutableTags nil means DefaultMutableTags; tags compare
// case-insensitively. An image with a digest is pinned whatever its tag. A missing or unparsable image is
// refused even with allowMutable. The error names the first offending object and container and counts
// the others.
func CheckImageTags(objs []*Object, allowMutable bool, mutableTags []string) error {
	if mutableTags == nil {
		mutableTags = DefaultMutableTags()
	}
	var problems []string
	for _, o := range objs {
		for _, c := range containers(o) {
			if p := checkImage(c.m["image"], allowMutable, mutableTags); p != "" {
				problems = append(problems, fmt.Sprintf("%s (%s), container %q: %s", o, o.Source, c.name, p))
			}
		}
	}
	switch len(problems) {
	case 0:
		return nil
	case 1:
		return exitcode.BadInputf("%s", problems[0])
	default:
		return exitcode.BadInputf("%s (and %d more)", problems[0], len(problems)-1)
	}
}

// checkImage returns what is wrong with one image, or "".
func checkImage(v any, allowMutable bool, mutableTags []string) string {
	image, _ := v.(string)
	if image == "" {
		return "has no image; set image in the manifest or pass --image CONTAINER=IMAGE"
	}
	// An empty default tag tells "app" (no tag) apart from "app:latest"; weak validation still accepts
	// Docker Hub short names like "nginx:1.27".
	ref, err := name.ParseReference(image, name.WithDefaultTag(""))
	if err != nil {
		return fmt.Sprintf("image %q is not a valid image reference (%s); fix the image", image, oneline.Fold(err.Error()))
	}
	if allowMutable {
		return ""
	}
	tag, ok := ref.(name.Tag)
	if !ok {
		return "" // a digest pins the image
	}
	const fix = "pin a version tag or digest, or pass --allow-mutable-tags"
	if tag.TagStr() == "" {
		return fmt.Sprintf("image %q has no tag or digest, so it means whatever :latest is at pull time; %s", image, fix)
	}
	for _, m := range mutableTags {
		if strings.EqualFold(tag.TagStr(), m) {
			return fmt.Sprintf("image %q uses the mutable tag %q; %s", image, tag.TagStr(), fix)
		}
	}
	return ""
}

func isWorkload(gk schema.GroupKind) bool {
	if gk.Group != "apps" {
		return false
	}
	switch gk.Kind {
	case "Deployment", "StatefulSet", "DaemonSet":
		return true
	}
	return false
}
