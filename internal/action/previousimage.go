package action

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/lock"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/registry"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
)

// PreviousImage is the value of --image NAME=previous: the tag pushed before the one running.
const PreviousImage = "previous"

// RollbackImage rolls a workload back to the image pushed before the one it runs, by push time in the
// registry (ECR's imagePushedAt, or the image config's created time elsewhere) — the manual "sort_by
// imagePushedAt [-2], kubectl set image" in one step, recorded as a release and tracked like a deploy.
type RollbackImage struct {
	Connect Connector
	Watch
	// Object is TYPE/NAME; empty means the workload of App's newest release.
	Object    string
	App       string
	Namespace string
	// Container names the container to roll back; needed when the workload has several.
	Container string
	// Prefix limits the previous image to tags starting with it (e.g. "1." or "prod-").
	Prefix      string
	Registry    *registry.Client
	WaitForLock time.Duration
	LockTTL     time.Duration
	Getenv      func(string) string
}

// Phases is the rollback to the previous image, step by step: the workload and the image are found
// before the app is locked, and the change is recorded before it is made (changePhases).
func (r *RollbackImage) Phases() []Phase {
	return append([]Phase{
		{Name: "check", Run: r.check},
		{Name: "connect", Run: r.connect},
		{Name: "find", Run: r.find},
		lockPhase(r.Watch, lock.Options{Wait: r.WaitForLock, TTL: r.LockTTL}, "", false),
	}, changePhases(r.Watch)...)
}

// Run finds the previous image, records the release, sets the image and follows the rollout.
func (r *RollbackImage) Run(ctx context.Context) (*report.Result, error) {
	return runPhases(ctx, &State{log: r.logger()}, r.Phases())
}

// check validates the options before any network call.
func (r *RollbackImage) check(context.Context, *State) error {
	if r.Timeout <= 0 {
		return exitcode.BadInputf("--timeout must be positive, got %s", r.Timeout)
	}
	if r.Object == "" && r.App == "" {
		return exitcode.BadInputf("--to-previous-image needs the workload: pass TYPE/NAME (e.g. deployment/web) or --app NAME")
	}
	return nil
}

// connect opens the cluster and reads the workload (named, or the app's). Fills Client, Store, Namespace,
// App and workload.
func (r *RollbackImage) connect(ctx context.Context, s *State) error {
	c, err := r.Connect(ctx)
	if err != nil {
		return err
	}
	ns := r.Namespace
	if ns == "" {
		ns = c.Namespace
	}
	store := release.NewStore(c)
	object := r.Object
	if object == "" {
		if object, err = r.appWorkload(ctx, store, ns); err != nil {
			return err
		}
	}
	w, err := resolveWorkload(ctx, c, object, ns)
	if err != nil {
		return err
	}
	if w.target.Kind == "Job" {
		return exitcode.BadInputf("%s is a Job; --to-previous-image rolls back Deployments, StatefulSets and DaemonSets", object)
	}
	s.Client, s.Store, s.workload, s.getenv = c, store, w, r.Getenv
	s.Namespace, s.App = w.target.Namespace, r.App
	if s.App == "" {
		s.App = w.target.Name
	}
	return nil
}

// find asks the registry for the image pushed before the running one. Fills Cause and change.
func (r *RollbackImage) find(ctx context.Context, s *State) error {
	c, w := s.Client, s.workload
	container, running, err := containerImage(w.live, r.Container)
	if err != nil {
		return err
	}
	prev, err := registry.PreviousOf(ctx, r.registry(), runningReference(ctx, c, w.live, container, running), r.Prefix)
	if err != nil {
		return err
	}
	s.Cause = fmt.Sprintf("rollguard rollback --to-previous-image: %s %s → %s (pushed %s)", container, running, prev.Reference,
		prev.Pushed.UTC().Format(time.RFC3339))
	s.change = &workloadChange{Command: "rollback", Images: withImage(w.live, container, prev.Reference),
		Apply: func(ctx context.Context) error {
			if err := setImage(ctx, c, w, container, prev.Reference); err != nil {
				return err
			}
			r.logger().Info("set the previous image", "workload", w.target.String(), "container", container, "image", prev.Reference)
			return nil
		}}
	return nil
}

func (r *RollbackImage) registry() *registry.Client {
	if r.Registry != nil {
		return r.Registry
	}
	c, _ := registry.NewClient()
	return c
}

// appWorkload is the workload of the app's newest release that has the container (any, without --container).
func (r *RollbackImage) appWorkload(ctx context.Context, store *release.Store, ns string) (string, error) {
	rec, err := store.Latest(ctx, ns, r.App)
	if err != nil {
		return "", err
	}
	if rec == nil {
		return "", exitcode.BadInputf("app %q has no release in namespace %q; name the workload (e.g. deployment/web)", r.App, ns)
	}
	var found []string
	for _, w := range rec.Workloads {
		if w.Kind == "Job" {
			continue
		}
		for _, o := range rec.Objects {
			if o.Kind == w.Kind && o.Name == w.Name && (r.Container == "" || slices.Contains(containerNames(o.Previous), r.Container) || o.Previous == nil) {
				found = append(found, strings.ToLower(w.Kind)+"/"+w.Name)
			}
		}
	}
	switch len(found) {
	case 0:
		return "", exitcode.BadInputf("release %s has no Deployment, StatefulSet or DaemonSet%s; name the workload", rec.ID, ifContainer(r.Container))
	case 1:
		return found[0], nil
	}
	return "", exitcode.BadInputf("release %s has several workloads (%s); name one, e.g. rollguard rollback --to-previous-image %s", rec.ID, strings.Join(found, ", "), found[0])
}

// previousSpecs returns the containers of --image NAME=previous specs.
func previousSpecs(specs []string) ([]string, error) {
	var out []string
	for _, s := range specs {
		c, ref, _ := strings.Cut(s, "=")
		if strings.TrimSpace(ref) != PreviousImage {
			continue
		}
		if c = strings.TrimSpace(c); c == "*" {
			return nil, exitcode.BadInputf("--image *=previous: name the container (NAME=previous); each container's previous image is its own")
		}
		out = append(out, c)
	}
	return out, nil
}

// resolvePrevious sets each named container to the image pushed before the one its workload runs in the
// cluster now. The workload must exist and run one image in that container: "previous" is relative to it.
func (d *Deploy) resolvePrevious(ctx context.Context, c *kube.Client, objs []*manifest.Object, containers []string) error {
	reg := d.Registry
	if reg == nil {
		var err error
		if reg, err = registry.NewClient(); err != nil {
			return err
		}
	}
	var specs []string
	for _, name := range containers {
		var running []string
		live0 := map[string]*unstructured.Unstructured{}
		for _, o := range objs {
			if !slices.Contains(containerNames(o.Unstructured), name) {
				continue
			}
			res, err := c.Resource(o.GroupVersionKind(), o.GetNamespace())
			if err != nil {
				return err
			}
			live, err := res.Get(ctx, o.GetName(), metav1.GetOptions{})
			if err != nil {
				if kerr := kube.Classify(err, "reading "+kube.Ref(o.Unstructured), c.Server); exitcode.Of(kerr) == exitcode.Unreachable {
					return kerr
				}
				return exitcode.BadInputf("--image %s=previous: %s %s/%s is not running (%v); previous is relative to the image it runs", name, o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
			_, img, err := containerImage(live, name)
			if err != nil {
				return err
			}
			if !slices.Contains(running, img) {
				running = append(running, img)
				live0[img] = live
			}
		}
		if len(running) != 1 {
			return exitcode.BadInputf("--image %s=previous: the workloads with container %s run different images (%s); deploy them one at a time", name, name, strings.Join(running, ", "))
		}
		prev, err := registry.PreviousOf(ctx, reg, runningReference(ctx, c, live0[running[0]], name, running[0]), "")
		if err != nil {
			return err
		}
		d.logger().Info("previous image", "container", name, "running", running[0], "previous", prev.Reference)
		specs = append(specs, name+"="+prev.Reference)
	}
	return manifest.SetImages(objs, specs)
}
