package action

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/rollguard/rollguard/internal/config"
	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/registry"
	"github.com/rollguard/rollguard/internal/release"
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
