package action

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rollguard/rollguard/internal/config"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/revision"
)

// Promote deploys to one environment exactly what runs healthy in another: the app's manifests for the
// target with every container image pinned to the digest the source runs, so a tag pushed again later
// cannot change what is promoted. The target's release record says who promoted what from where.
type Promote struct {
	Watch
	Config   *config.Config
	From, To string
	// Force allows a target that is not next after the source in the promotion order; it is recorded.
	Force   bool
	Connect EnvConnector
	// Resolve resolves tags the source's pods do not pin (simulated kubelets report no imageID).
	Resolve Resolver
	// Getenv reads CI variables (who triggered the run); nil means none.
	Getenv func(string) string

	// OnFailure and Approval override the target environment's settings when set; Watch.Timeout too.
	OnFailure string
	Approval
	WaitForLock time.Duration
	LockTTL     time.Duration
}

// Run checks the promotion is allowed, pins the images and deploys the target.
func (p *Promote) Run(ctx context.Context) (*report.Result, error) {
	cfg := p.Config
	if p.From == "" || p.To == "" {
		return nil, exitcode.BadInputf("promote needs --from ENV and --to ENV; environments are %s", strings.Join(cfg.Names(), ", "))
	}
	src, err := cfg.Env(p.From)
	if err != nil {
		return nil, err
	}
	dst, err := cfg.Env(p.To)
	if err != nil {
		return nil, err
	}
	if src.Name == dst.Name || src.Cluster == dst.Cluster && src.Namespace == dst.Namespace {
		return nil, exitcode.BadInputf("%s and %s are the same place (context %s, namespace %s): promote between different environments", src.Name, dst.Name, dst.Cluster, dst.Namespace)
	}
	forced := ""
	if next := cfg.Next(src.Name); next != dst.Name {
		why := fmt.Sprintf("%s is not next after %s in the promotion order %s", dst.Name, src.Name, cfg.OrderText())
		if !p.Force {
			fix := "pass --force to promote anyway (it is recorded)"
			if next != "" {
				fix = "promote to " + next + " first, or " + fix
			}
			return nil, exitcode.BadInputf("%s; %s", why, fix)
		}
		forced = why
	}
	// The target's manifests are read before any connection: a typo is reported as such.
	objs, err := manifest.Load(ctx, cfg.ManifestsOf(dst), nil)
	if err != nil {
		return nil, err
	}

	sc, err := p.Connect(ctx, src)
	if err != nil {
		return nil, err
	}
	rec, err := p.checkSource(ctx, sc, src)
	if err != nil {
		return nil, err
	}
	if err := p.pin(ctx, sc, src, rec, objs); err != nil {
		return nil, err
	}
	tc, err := p.Connect(ctx, dst)
	if err != nil {
		return nil, err
	}
	getenv := p.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cause := fmt.Sprintf("promoted from %s (%s) by %s", src.Name, rec.ID, release.Identity(ctx, tc, manifest.DetectCI(getenv)))
	if forced != "" {
		cause += "; forced: " + forced
	}

	d := &Deploy{
		Connect:     func(context.Context) (*kube.Client, error) { return tc, nil },
		Watch:       p.Watch,
		Objects:     objs,
		ChangeCause: cause,
		Getenv:      getenv,
		OnFailure:   p.OnFailure,
		Approval:    p.Approval,
		WaitForLock: p.WaitForLock,
		LockTTL:     p.LockTTL,
	}
	// Overrides given to promote win over the target environment's settings; the rest come from it.
	d.UseEnvironment(cfg, dst, func(setting string) bool {
		switch setting {
		case SettingTimeout:
			return p.Timeout != 0
		case SettingOnFailure:
			return p.OnFailure != ""
		case SettingApprovalTimeout:
			return p.ApprovalTimeout != 0
		case SettingApprovalTimeoutAction:
			return p.ApprovalTimeoutAction != ""
		}
		return false
	})
	res, err := d.Run(ctx)
	if res != nil {
		res.Command = "promote"
	}
	return res, err
}

// checkSource returns the source's current release when it succeeded and its workloads run healthy now,
// unchanged since; otherwise a bad-input refusal saying why.
func (p *Promote) checkSource(ctx context.Context, c *kube.Client, src *config.Environment) (*release.Record, error) {
	app := p.Config.App
	rec, err := release.NewStore(c).Latest(ctx, src.Namespace, app)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, exitcode.BadInputf("%s has no release of %s (namespace %s): deploy to %s first", src.Name, app, src.Namespace, src.Name)
	}
	if rec.Outcome != release.Succeeded {
		why := rec.Outcome.Text()
		if rec.Message != "" {
			why += " (" + rec.Message + ")"
		}
		return nil, exitcode.BadInputf("refusing to promote from %s: its current release %s %s; only a release that succeeded is promoted: deploy a fixed release to %s first",
			src.Name, rec.ID, why, src.Name)
	}
	if len(rec.Workloads) == 0 {
		return nil, exitcode.BadInputf("refusing to promote from %s: release %s has no workloads to take images from", src.Name, rec.ID)
	}
	for _, w := range rec.Workloads {
		id := w.Kind + "/" + w.Name
		live, err := readLive(ctx, c, w.Kind, src.Namespace, w.Name)
		if err != nil {
			return nil, err
		}
		if live == nil {
			return nil, exitcode.BadInputf("refusing to promote from %s: %s of release %s no longer exists there", src.Name, id, rec.ID)
		}
		ok, detail, err := health(ctx, c, live, rec, p.Thresholds)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, exitcode.BadInputf("refusing to promote from %s: %s is not healthy now (%s); only what runs healthy is promoted", src.Name, id, detail)
		}
		spec, err := templateSpec(live)
		if err != nil {
			return nil, err
		}
		if got := revision.Images(spec); len(w.Images) > 0 && !slices.Equal(got, w.Images) {
			return nil, exitcode.BadInputf("refusing to promote from %s: %s runs %s, not what release %s deployed (%s): it was changed outside rollguard; deploy to %s again",
				src.Name, id, strings.Join(got, ", "), rec.ID, strings.Join(w.Images, ", "), src.Name)
		}
	}
	return rec, nil
}

// pin sets every container image of objs (the target's manifests) to the image its workload runs in the
// source, by digest. A workload or container the source does not run is refused: promoting it would ship
// something that never passed the source.
func (p *Promote) pin(ctx context.Context, c *kube.Client, src *config.Environment, rec *release.Record, objs []*manifest.Object) error {
	for _, o := range objs {
		if o.GetAPIVersion() != "apps/v1" && o.GetAPIVersion() != "batch/v1" {
			continue
		}
		if _, ok := workloadKinds[o.GetKind()]; !ok {
			continue
		}
		id := o.GetKind() + "/" + o.GetName()
		live, err := readLive(ctx, c, o.GetKind(), src.Namespace, o.GetName())
		if err != nil {
			return err
		}
		if live == nil {
			return exitcode.BadInputf("refusing to promote: %s (%s) does not run in %s (release %s); deploy it to %s first", id, o.Source, src.Name, rec.ID, src.Name)
		}
		images, err := runningImages(ctx, c, live, p.Resolve)
		if err != nil {
			return err
		}
		byName := map[string]RunningImage{}
		for _, im := range images {
			byName[im.Container] = im
		}
		path := manifest.PodSpecPath(o.GroupVersionKind().GroupKind())
		for _, list := range []string{"initContainers", "containers"} {
			items, found, _ := unstructured.NestedSlice(o.Object, append(slices.Clone(path), list)...)
			if !found {
				continue
			}
			for _, it := range items {
				m, ok := it.(map[string]any)
				if !ok {
					continue
				}
				cname, _ := m["name"].(string)
				im, ok := byName[cname]
				if !ok {
					return exitcode.BadInputf("refusing to promote: %s container %q (%s) does not run in %s; deploy it to %s first", id, cname, o.Source, src.Name, src.Name)
				}
				if im.err != nil {
					return fmt.Errorf("refusing to promote from %s: resolving the digest of %s container %q: %w", src.Name, id, cname, im.err)
				}
				if im.Digest == "" {
					return exitcode.BadInputf("refusing to promote from %s: cannot tell which digest %s container %q runs (%s): %s", src.Name, id, cname, im.Image, im.Problem)
				}
				pinned, err := pinImage(im.Image, im.Digest)
				if err != nil {
					return err
				}
				m["image"] = pinned
			}
			if err := unstructured.SetNestedSlice(o.Object, items, append(slices.Clone(path), list)...); err != nil {
				return fmt.Errorf("pinning the images of %s: %w", id, err)
			}
		}
	}
	return nil
}

// pinImage returns image pinned to digest, keeping its tag for people to read: "reg/web:1.0.0@sha256:…".
func pinImage(image, digest string) (string, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		return "", exitcode.BadInputf("image %q is not a valid reference: %v", image, err)
	}
	if d, ok := ref.(name.Digest); ok {
		if d.DigestStr() == digest {
			return image, nil
		}
		base, _, _ := strings.Cut(image, "@")
		return base + "@" + digest, nil
	}
	return image + "@" + digest, nil
}
