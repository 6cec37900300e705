package action

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/config"
	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/registry"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/track"
	"k8s.io/kubectl/pkg/util/podutils"
)

// EnvConnector opens the connection to an environment's cluster (its kubeconfig context).
type EnvConnector func(ctx context.Context, env *config.Environment) (*kube.Client, error)

// Resolver returns the digest an image reference's tag points to now, in its registry.
type Resolver func(ctx context.Context, image string) (string, error)

// RegistryResolver resolves tags with the registry client (docker config credentials and helpers).
func RegistryResolver() (Resolver, error) {
	rc, err := registry.NewClient()
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, image string) (string, error) {
		// A registry that does not answer must not hang a promotion or a report.
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		ref, err := name.ParseReference(image)
		if err != nil {
			return "", fmt.Errorf("image %q: %w", image, err)
		}
		return rc.Resolve(ctx, ref)
	}, nil
}

// How an image's digest is known.
const (
	// DigestFromReference: the image reference names the digest; nothing can change what it means.
	DigestFromReference = "reference"
	// DigestFromPods: the ready pods' containers report it (status.containerStatuses[].imageID).
	DigestFromPods = "pods"
	// DigestFromRegistry: the tag was resolved in the registry now. What the pods pulled earlier may
	// differ if the tag was pushed again since; only simulated kubelets leave no better source.
	DigestFromRegistry = "registry"
)

// RunningImage is one container's image in an environment.
type RunningImage struct {
	Container string `json:"container"`
	Image     string `json:"image"`
	Digest    string `json:"digest,omitempty"`
	// DigestFrom is reference, pods or registry; empty when the digest is unknown.
	DigestFrom string `json:"digestFrom,omitempty"`
	// Problem says why the digest is unknown.
	Problem string `json:"problem,omitempty"`
	// err is the registry's error, which carries its exit code (4: unreachable or credentials refused).
	err error
}

// Envs reports every environment of the app: its current release, images and digests, health, last
// outcome, and how it differs from the environment before it in the promotion order.
type Envs struct {
	Config  *config.Config
	Connect EnvConnector
	// Resolve resolves tags that neither the reference nor the pods pin; nil leaves them unresolved.
	Resolve Resolver
}

// EnvState is one environment in `rollguard envs`.
type EnvState struct {
	Name        string    `json:"name"`
	Cluster     string    `json:"cluster"`
	Namespace   string    `json:"namespace"`
	Release     string    `json:"release,omitempty"`
	Outcome     string    `json:"outcome,omitempty"`
	DeployedBy  string    `json:"deployedBy,omitempty"`
	ChangeCause string    `json:"changeCause,omitempty"`
	UpdatedAt   time.Time `json:"updatedAt,omitzero"`
	// Health is healthy, unhealthy, none (no release) or unknown (unreachable).
	Health    string        `json:"health"`
	Workloads []EnvWorkload `json:"workloads,omitempty"`
	// DriftFrom is the environment before this one in the promotion order; Drift lists how this one
	// differs from it (empty: the same images). Both are empty when there is nothing to compare with.
	DriftFrom string   `json:"driftFrom,omitempty"`
	Drift     []string `json:"drift,omitempty"`
	// Error says why the environment could not be read.
	Error string `json:"error,omitempty"`
}

// EnvWorkload is one workload of an environment's current release, as it runs now.
type EnvWorkload struct {
	Kind    string         `json:"kind"`
	Name    string         `json:"name"`
	Healthy bool           `json:"healthy"`
	Detail  string         `json:"detail,omitempty"`
	Images  []RunningImage `json:"images,omitempty"`
}

// Run reads every environment. An environment that cannot be read is reported in its EnvState; the
// returned error is the first such failure (with its exit code), after every environment was tried.
func (e *Envs) Run(ctx context.Context) ([]EnvState, error) {
	var states []EnvState
	var first error
	for _, n := range e.Config.Names() {
		env := e.Config.Environments[n]
		st, err := e.read(ctx, env)
		if err != nil {
			st.Health = "unknown"
			st.Error = err.Error()
			if first == nil {
				first = fmt.Errorf("environment %s: %w", n, err)
			}
		}
		states = append(states, st)
	}
	for i := range states {
		prev := e.Config.Previous(states[i].Name)
		j := slices.IndexFunc(states, func(s EnvState) bool { return s.Name == prev })
		if j < 0 || states[i].Error != "" || states[j].Error != "" || states[i].Release == "" || states[j].Release == "" {
			continue
		}
		states[i].DriftFrom = prev
		states[i].Drift = drift(states[i], states[j])
	}
	return states, first
}

func (e *Envs) read(ctx context.Context, env *config.Environment) (EnvState, error) {
	st := EnvState{Name: env.Name, Cluster: env.Cluster, Namespace: env.Namespace, Health: "none"}
	c, err := e.Connect(ctx, env)
	if err != nil {
		return st, err
	}
	rec, err := release.NewStore(c).Latest(ctx, env.Namespace, e.Config.App)
	if err != nil || rec == nil {
		return st, err
	}
	st.Release, st.Outcome, st.DeployedBy, st.ChangeCause, st.UpdatedAt = rec.ID, string(rec.Outcome), rec.DeployedBy, rec.ChangeCause, rec.UpdatedAt
	st.Health = "healthy"
	for _, w := range rec.Workloads {
		ew := EnvWorkload{Kind: w.Kind, Name: w.Name}
		live, err := readLive(ctx, c, w.Kind, env.Namespace, w.Name)
		if err != nil {
			return st, err
		}
		if live == nil {
			ew.Detail = "not found"
		} else {
			if ew.Healthy, ew.Detail, err = health(ctx, c, live, rec, diagnose.DefaultThresholds()); err != nil {
				return st, err
			}
			if ew.Images, err = runningImages(ctx, c, live, e.Resolve); err != nil {
				return st, err
			}
		}
		if !ew.Healthy {
			st.Health = "unhealthy"
		}
		st.Workloads = append(st.Workloads, ew)
	}
	return st, nil
}

// drift lists how env differs from prev, by workload and container: digests when both are known, image
// references otherwise.
func drift(env, prev EnvState) []string {
	type key struct{ kind, name, container string }
	index := func(s EnvState) (map[key]RunningImage, []key) {
		m := map[key]RunningImage{}
		var order []key
		for _, w := range s.Workloads {
			for _, im := range w.Images {
				k := key{w.Kind, w.Name, im.Container}
				m[k] = im
				order = append(order, k)
			}
		}
		return m, order
	}
	here, hereOrder := index(env)
	there, thereOrder := index(prev)
	out := []string{}
	for _, k := range hereOrder {
		a := here[k]
		b, ok := there[k]
		id := fmt.Sprintf("%s/%s %s", k.kind, k.name, k.container)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: not in %s", id, prev.Name))
		case a.Digest != "" && b.Digest != "":
			if a.Digest != b.Digest {
				out = append(out, fmt.Sprintf("%s: %s here, %s in %s", id, registry.ShortDigest(a.Digest), registry.ShortDigest(b.Digest), prev.Name))
			}
		case a.Image != b.Image:
			out = append(out, fmt.Sprintf("%s: %s here, %s in %s", id, a.Image, b.Image, prev.Name))
		}
	}
	for _, k := range thereOrder {
		if _, ok := here[k]; !ok {
			out = append(out, fmt.Sprintf("%s/%s %s: only in %s", k.kind, k.name, k.container, prev.Name))
		}
	}
	return out
}

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
