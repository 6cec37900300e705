package action

// What a live workload runs: reading it, its pod template, its health and its images with their digests
// (envs, promote), and its containers (rollback --to-previous-image).

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kubectl/pkg/util/podutils"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/track"
)

// workloadKinds maps the kinds a release record names to their group and version.
var workloadKinds = map[string]schema.GroupVersionKind{
	"Deployment":  {Group: "apps", Version: "v1", Kind: "Deployment"},
	"StatefulSet": {Group: "apps", Version: "v1", Kind: "StatefulSet"},
	"DaemonSet":   {Group: "apps", Version: "v1", Kind: "DaemonSet"},
	"CronJob":     {Group: "batch", Version: "v1", Kind: "CronJob"},
	"Job":         {Group: "batch", Version: "v1", Kind: "Job"},
}

// readLive reads a workload, or returns nil when it does not exist.
func readLive(ctx context.Context, c *kube.Client, kind, ns, name string) (*unstructured.Unstructured, error) {
	gvk, ok := workloadKinds[kind]
	if !ok {
		return nil, fmt.Errorf("reading %s/%s: unsupported kind %s", kind, name, kind)
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(ns)
	u.SetName(name)
	return c.Get(ctx, u)
}

// templateSpec returns the pod spec of a workload's template.
func templateSpec(u *unstructured.Unstructured) (corev1.PodSpec, error) {
	spec, found, err := manifest.PodSpec(u)
	if err == nil && !found {
		err = fmt.Errorf("reading the pod template of %s: a %s has none", kube.Ref(u), u.GroupVersionKind().GroupKind())
	}
	return spec, err
}

// health asks the diagnosis core whether a live workload of rec is healthy now, with a short detail:
// its progress when healthy, its reason and message when failed, its progress while still rolling out.
// Events from before rec was applied are not held against it.
func health(ctx context.Context, c *kube.Client, live *unstructured.Unstructured, rec *release.Record, th diagnose.Thresholds) (bool, string, error) {
	v, err := track.Now(ctx, c, live, rec.Timings.AppliedAt, th)
	if err != nil {
		return false, "", err
	}
	switch v.Status {
	case diagnose.Healthy:
		return true, v.Progress, nil
	case diagnose.Failed:
		return false, string(v.Reason) + ": " + v.Message, nil
	}
	detail := "still rolling out"
	if v.Progress != "" {
		detail += ": " + v.Progress
	}
	return false, detail, nil
}

// runningImages lists the images of a workload's current template with their digests. A digest named by
// the reference wins: it is immutable and may be a multi-platform index, where a pod's imageID is one
// platform's manifest. Otherwise the ready pods of the current template say which digest they run (real
// kubelets report it); otherwise the tag is resolved in the registry now, if resolve is set.
func runningImages(ctx context.Context, c *kube.Client, live *unstructured.Unstructured, resolve Resolver) ([]RunningImage, error) {
	spec, err := templateSpec(live)
	if err != nil {
		return nil, err
	}
	pods, err := workloadPods(ctx, c, live)
	if err != nil {
		return nil, err
	}
	var out []RunningImage
	for _, ctr := range slices.Concat(spec.InitContainers, spec.Containers) {
		im := RunningImage{Container: ctr.Name, Image: ctr.Image}
		ref, err := name.ParseReference(ctr.Image)
		if err != nil {
			im.Problem = fmt.Sprintf("not a valid image reference: %v", err)
			out = append(out, im)
			continue
		}
		if d, ok := ref.(name.Digest); ok {
			im.Digest, im.DigestFrom = d.DigestStr(), DigestFromReference
			out = append(out, im)
			continue
		}
		digests := podDigests(pods, ctr.Name, ctr.Image)
		switch {
		case len(digests) == 1:
			im.Digest, im.DigestFrom = digests[0], DigestFromPods
		case len(digests) > 1:
			im.Problem = fmt.Sprintf("pods run different digests for %s (%s): the tag moved while they started", ctr.Image, strings.Join(digests, ", "))
		case resolve != nil:
			d, err := resolve(ctx, ctr.Image)
			if err != nil {
				im.Problem, im.err = "resolving the tag: "+err.Error(), err
			} else {
				im.Digest, im.DigestFrom = d, DigestFromRegistry
			}
		default:
			im.Problem = "no digest: the pods report none and the tag was not resolved"
		}
		out = append(out, im)
	}
	return out, nil
}

// workloadPods lists the pods a workload selects (none for kinds without a selector).
func workloadPods(ctx context.Context, c *kube.Client, live *unstructured.Unstructured) ([]corev1.Pod, error) {
	m, ok, _ := unstructured.NestedMap(live.Object, "spec", "selector")
	if !ok || live.GetKind() == "CronJob" {
		return nil, nil
	}
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &ls); err != nil {
		return nil, fmt.Errorf("reading the selector of %s: %w", kube.Ref(live), err)
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		return nil, fmt.Errorf("reading the selector of %s: %w", kube.Ref(live), err)
	}
	list, err := c.Typed.CoreV1().Pods(live.GetNamespace()).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, kube.Classify(err, "listing the pods of "+kube.Ref(live), c.Server)
	}
	return list.Items, nil
}

// podDigests returns the distinct digests that ready pods running image in container report.
func podDigests(pods []corev1.Pod, container, image string) []string {
	var out []string
	for _, p := range pods {
		if p.DeletionTimestamp != nil || !podutils.IsPodReady(&p) {
			continue
		}
		// Only pods of the current template: the spec's image for the container must be this one.
		if !slices.ContainsFunc(slices.Concat(p.Spec.InitContainers, p.Spec.Containers), func(c corev1.Container) bool {
			return c.Name == container && c.Image == image
		}) {
			continue
		}
		for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
			if cs.Name != container {
				continue
			}
			// A repo digest ("repo@sha256:…", "docker-pullable://repo@sha256:…") names pullable content; a bare
			// "sha256:…" is a local image id and is not a registry digest.
			if _, d, ok := strings.Cut(cs.ImageID, "@"); ok && strings.HasPrefix(d, "sha256:") && !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
	}
	slices.Sort(out)
	return out
}

func ifContainer(name string) string {
	if name == "" {
		return ""
	}
	return " with container " + name
}

// containerImage picks the container to roll back and its image; with no name, the workload must have one.
func containerImage(live *unstructured.Unstructured, name string) (string, string, error) {
	cs, _, _ := unstructured.NestedSlice(live.Object, containersPath(live)...)
	var names []string
	for _, c := range cs {
		m, _ := c.(map[string]any)
		n, _ := m["name"].(string)
		img, _ := m["image"].(string)
		if n == name || (name == "" && len(cs) == 1) {
			return n, img, nil
		}
		names = append(names, n)
	}
	if name == "" {
		return "", "", exitcode.BadInputf("%s %s has containers %s; pass --container NAME", live.GetKind(), live.GetName(), strings.Join(names, ", "))
	}
	return "", "", exitcode.BadInputf("%s %s has no container %q; its containers are %s", live.GetKind(), live.GetName(), name, strings.Join(names, ", "))
}

// containersPath is the field path of u's containers; nil (no containers) for a kind without pods.
func containersPath(u *unstructured.Unstructured) []string {
	path := manifest.PodSpecPath(u.GroupVersionKind().GroupKind())
	if path == nil {
		return nil
	}
	return append(path, "containers")
}

func containerNames(obj *unstructured.Unstructured) []string {
	if obj == nil {
		return nil
	}
	cs, _, _ := unstructured.NestedSlice(obj.Object, containersPath(obj)...)
	var out []string
	for _, c := range cs {
		if m, ok := c.(map[string]any); ok {
			n, _ := m["name"].(string)
			out = append(out, n)
		}
	}
	return out
}

// withImage lists the workload's template images with one container's image replaced.
func withImage(live *unstructured.Unstructured, container, image string) []string {
	obj := live.DeepCopy()
	path := containersPath(obj)
	if path == nil {
		return templateImages(obj)
	}
	cs, _, _ := unstructured.NestedSlice(obj.Object, path...)
	for _, c := range cs {
		if m, ok := c.(map[string]any); ok && m["name"] == container {
			m["image"] = image
		}
	}
	_ = unstructured.SetNestedSlice(obj.Object, cs, path...)
	return templateImages(obj)
}

// setImage changes one container's image with a strategic merge patch, as `kubectl set image` does: no
// other field changes hands, so an HPA's replicas or another tool's fields are left alone.
func setImage(ctx context.Context, c *kube.Client, w *workload, container, image string) error {
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"containers": []map[string]string{{"name": container, "image": image}}}}}})
	if err != nil {
		return err
	}
	res, err := c.Resource(w.gvk, w.target.Namespace)
	if err != nil {
		return err
	}
	if _, err := res.Patch(ctx, w.target.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: kube.FieldManager}); err != nil {
		return kube.Classify(err, "setting the image of "+w.target.String(), c.Server)
	}
	return nil
}

// runningReference pins image to the digest the kubelet reports for the workload's pods that run it, when
// they all agree: a tag pushed again after the pods started must not change what "the one running" means.
// Without such a report (a simulated kubelet, pods not started yet) image is returned as it is.
func runningReference(ctx context.Context, c *kube.Client, live *unstructured.Unstructured, container, image string) string {
	if strings.Contains(image, "@") {
		return image
	}
	m, _, _ := unstructured.NestedStringMap(live.Object, "spec", "selector", "matchLabels")
	if len(m) == 0 {
		return image
	}
	pods, err := c.Typed.CoreV1().Pods(live.GetNamespace()).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(m).String()})
	if err != nil {
		return image
	}
	if d := podDigest(pods.Items, container, image); d != "" {
		return image + "@" + d
	}
	return image
}

// podDigest is the one digest the pods running image in container report, or "" when none or several do.
// Unlike podDigests (envs), pods that are not ready count: rolling back from a crashing image must still
// know which digest of it runs; and the digest must be of image's repository, since it pins image.
func podDigest(pods []corev1.Pod, container, image string) string {
	repo, err := name.ParseReference(image)
	if err != nil {
		return ""
	}
	var found string
	for _, p := range pods {
		if !slices.ContainsFunc(p.Spec.Containers, func(c corev1.Container) bool { return c.Name == container && c.Image == image }) {
			continue
		}
		for _, st := range p.Status.ContainerStatuses {
			id := strings.TrimPrefix(st.ImageID, "docker-pullable://")
			d, err := name.NewDigest(id)
			if st.Name != container || err != nil || d.Context().Name() != repo.Context().Name() {
				continue
			}
			if found != "" && found != d.DigestStr() {
				return ""
			}
			found = d.DigestStr()
		}
	}
	return found
}
