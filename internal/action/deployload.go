package action

// The deploy's first two phases: reading the release with its local checks (load), then opening the
// cluster and placing every object (connect). Nothing here changes the cluster.

import (
	"context"
	"errors"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/release"
)

// load reads the manifests and applies the local changes and checks (images, tags, change cause): bad
// input is reported as such even when the cluster is down. Fills Objects and Cause.
func (d *Deploy) load(ctx context.Context, s *State) error {
	if d.Timeout <= 0 {
		return exitcode.BadInputf("--timeout must be positive, got %s", d.Timeout)
	}
	if _, err := ParseTimeoutAction(d.ApprovalTimeoutAction); err != nil {
		return err
	}
	if _, err := ParseOnIrreversible(d.OnIrreversible); err != nil {
		return err
	}
	if d.Bake < 0 {
		return exitcode.BadInputf("--bake must not be negative, got %s", d.Bake)
	}
	if OnFailure(d.OnFailure) != OnFailureApprove && d.Explicit != nil {
		for _, name := range []string{SettingApprovalTimeout, SettingApprovalTimeoutAction} {
			if d.Explicit(name) {
				return exitcode.BadInputf("--%s applies only with --on-failure approve (this deploy's is %s); drop it or pass --on-failure approve", name, d.OnFailure)
			}
		}
	}
	objs := d.Objects
	if objs == nil {
		var err error
		if objs, err = manifest.Load(ctx, d.Files, d.Stdin); err != nil {
			return err
		}
	}
	if err := manifest.SetImages(objs, d.Images); err != nil {
		return err
	}
	// --image NAME=previous is resolved against the cluster and the registry once connected.
	previous, err := previousSpecs(d.Images)
	if err != nil {
		return err
	}
	if len(previous) == 0 {
		if err := manifest.CheckImageTags(objs, d.AllowMutableTags, manifest.DefaultMutableTags()); err != nil {
			return err
		}
	}
	s.previous = previous
	s.getenv = d.Getenv
	if s.getenv == nil {
		s.getenv = func(string) string { return "" }
	}
	s.Cause = manifest.ChangeCause(d.ChangeCause, s.getenv)
	if err := manifest.SetChangeCause(objs, s.Cause); err != nil {
		return err
	}
	s.Objects = objs
	return nil
}

// connect opens the cluster, gives every namespaced object its namespace and orders the objects for
// applying. Fills Client, Store, Namespace, CRDs.
func (d *Deploy) connect(ctx context.Context, s *State) error {
	c, err := d.Connect(ctx)
	if err != nil {
		return err
	}
	s.Client, s.Store = c, release.NewStore(c)
	ns := d.Namespace
	if ns == "" {
		ns = c.Namespace
	}
	s.CRDs = crdScopes(s.Objects)
	namespaced := func(gvk schema.GroupVersionKind) (bool, error) {
		if scope, ok := s.CRDs[gvk.GroupKind()]; ok {
			return scope, nil
		}
		return c.Namespaced(gvk)
	}
	if err := manifest.DefaultNamespace(s.Objects, ns, d.Namespace != "", namespaced); err != nil {
		var unknown *kube.UnknownKindError
		if errors.As(err, &unknown) {
			return exitcode.BadInputf("%v", err)
		}
		return err
	}
	if len(s.previous) > 0 {
		if err := d.resolvePrevious(ctx, c, s.Objects, s.previous); err != nil {
			return err
		}
		if err := manifest.CheckImageTags(s.Objects, d.AllowMutableTags, manifest.DefaultMutableTags()); err != nil {
			return err
		}
	}
	s.Objects = manifest.Order(s.Objects)
	if d.Namespace == "" {
		// The release lives where its workloads are, so manifests that name their namespace need no -n
		// and their records and lock sit next to them.
		ns = releaseNamespace(s.Objects, ns)
	}
	s.Namespace = ns
	return nil
}
