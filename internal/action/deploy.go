package action

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/lock"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/registry"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/track"
)

// Deploy applies a release and follows it until it is healthy or has failed, and says why.
type Deploy struct {
	Connect Connector
	Watch
	// Files are manifest files, folders (kustomizations included) or "-" for standard input.
	Files []string
	Stdin io.Reader
	// Images are CONTAINER=REF overrides, like `kubectl set image`; CONTAINER=previous deploys the tag pushed
	// before the one the cluster runs in that container (see RollbackImage).
	Images []string
	// Registry finds previous images; nil means a client choosing ECR or OCI by host name.
	Registry         *registry.Client
	AllowMutableTags bool
	ChangeCause      string
	// Namespace is -n; empty means the kubeconfig context's namespace.
	Namespace string
	// Getenv reads CI variables for the change cause; nil means none.
	Getenv func(string) string

	// App names the release: its records, lock and history. Default: the first workload's name.
	App         string
	Environment string
	// OnFailure is rollback (default), approve, hold or none.
	OnFailure string
	Approval
	// WaitForLock is how long to wait while another run deploys or rolls back the same app.
	WaitForLock time.Duration
	// LockTTL is how long the lock outlives a run that died (default 30s).
	LockTTL time.Duration
	// held is this run's lock on the app, once acquired.
	held *lock.Lock
	// SkipPodPreflight leaves refused pods to tracking instead of dry-run creating one per workload first.
	SkipPodPreflight bool
	// AfterApply, when set, runs once every object is applied, before tracking (an environment's access
	// policy, so a new Ingress is not left open while the rollout is watched). An error fails the release.
	AfterApply func(ctx context.Context, c *kube.Client, ns string) error
}

// Run validates everything, applies, tracks and reports. Nothing is applied unless every object passed
// local checks and a server-side dry-run.
func (d *Deploy) Run(ctx context.Context) (*report.Result, error) {
	log := d.logger()
	if d.Timeout <= 0 {
		return nil, exitcode.BadInputf("--timeout must be positive, got %s", d.Timeout)
	}
	objs, err := manifest.Load(ctx, d.Files, d.Stdin)
	if err != nil {
		return nil, err
	}
	if err := manifest.SetImages(objs, d.Images); err != nil {
		return nil, err
	}
	// --image NAME=previous is resolved against the cluster and the registry once connected.
	previous, err := previousSpecs(d.Images)
	if err != nil {
		return nil, err
	}
	if len(previous) == 0 {
		if err := manifest.CheckImageTags(objs, d.AllowMutableTags, manifest.DefaultMutableTags()); err != nil {
			return nil, err
		}
	}
	getenv := d.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cause := manifest.ChangeCause(d.ChangeCause, getenv)
	if err := manifest.SetChangeCause(objs, cause); err != nil {
		return nil, err
	}

	c, err := d.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ns := d.Namespace
	if ns == "" {
		ns = c.Namespace
	}
	crds := crdScopes(objs)
	namespaced := func(gvk schema.GroupVersionKind) (bool, error) {
		if scope, ok := crds[gvk.GroupKind()]; ok {
			return scope, nil
		}
		return c.Namespaced(gvk)
	}
	if err := manifest.DefaultNamespace(objs, ns, d.Namespace != "", namespaced); err != nil {
		var unknown *kube.UnknownKindError
		if errors.As(err, &unknown) {
			return nil, exitcode.BadInputf("%v", err)
		}
		return nil, err
	}
	if len(previous) > 0 {
		if err := d.resolvePrevious(ctx, c, objs, previous); err != nil {
			return nil, err
		}
		if err := manifest.CheckImageTags(objs, d.AllowMutableTags, manifest.DefaultMutableTags()); err != nil {
			return nil, err
		}
	}
	objs = manifest.Order(objs)
	if d.Namespace == "" {
		// The release lives where its workloads are, so manifests that name their namespace need no -n
		// and their records and lock sit next to them.
		ns = releaseNamespace(objs, ns)
	}

	if err := d.validate(ctx, c, objs, crds); err != nil {
		return nil, err
	}
	if !d.SkipPodPreflight {
		if err := podPreflight(ctx, c, objs, log); err != nil {
			return nil, err
		}
	}

	app := d.App
	if app == "" {
		app = defaultApp(objs)
	}
	if err := release.ValidateApp(app); err != nil {
		return nil, err
	}
	onFailure := d.OnFailure
	if onFailure == "" {
		onFailure = OnFailureRollback
	}
	switch onFailure {
	case OnFailureRollback, OnFailureApprove, OnFailureHold, OnFailureNone:
	default:
		return nil, exitcode.BadInputf("--on-failure must be rollback, approve, hold or none, got %q", onFailure)
	}
	if err := d.preflight(ctx, c, ns, objs, onFailure); err != nil {
		return nil, err
	}
	crashpoint.Hit("deploy:validated")

	// The lock and the record live in the release's namespace, so a namespace the release brings is
	// created first. A rollback keeps it: deleting a namespace would delete the release history with it.
	if err := createNamespaces(ctx, c, objs); err != nil {
		return nil, err
	}

	// One run at a time per app: a second pipeline waits here, before anything is recorded or changed.
	lk, err := lock.Acquire(ctx, c, ns, app, lock.Options{Wait: d.WaitForLock, TTL: d.LockTTL, OnWait: func(holder string, since time.Time) {
		log.Warn("waiting for another run to finish", "app", app, "holder", holder, "since", since)
	}})
	if err != nil {
		return nil, err
	}
	defer lk.Release(context.WithoutCancel(ctx))
	crashpoint.Hit("deploy:locked")
	ctx, cancel := holdLock(ctx, lk, log, app)
	defer cancel()
	d.held = lk

	store := release.NewStore(c)
	inherited, err := d.converge(ctx, c, store, ns, app)
	if err != nil {
		return nil, stoppedBeforeChange(ctx, err)
	}
	last, err := store.Latest(ctx, ns, app)
	if err != nil {
		return nil, stoppedBeforeChange(ctx, err)
	}
	states, wstates, err := captureState(ctx, c, objs, inherited)
	if err != nil {
		return nil, stoppedBeforeChange(ctx, err)
	}
	ci := manifest.DetectCI(getenv)
	rec := &release.Record{
		App: app, Namespace: ns, Environment: d.Environment, DeployedBy: release.Identity(ctx, c, ci), CI: ci,
		ChangeCause: cause, Objects: states, Workloads: wstates, Outcome: release.Applying,
		RestoresTo: release.RestorePoint(last),
	}
	if err := store.Create(ctx, rec); err != nil {
		return nil, stoppedBeforeChange(ctx, err)
	}
	// A killed or pending release is closed as failed; one that already says how it stopped keeps that.
	if inherited != nil && inherited.Outcome != release.Interrupted && inherited.Outcome != release.Superseded {
		inherited.Message = "interrupted; superseded by " + rec.ID
		if err := finish(ctx, store, inherited, release.Failed); err != nil {
			return nil, err
		}
	}
	log.Info("recorded release", "release", rec.ID)
	crashpoint.Hit("deploy:recorded")

	result := &report.Result{Command: "deploy", Release: rec.ID, Namespace: ns, ChangeCause: cause}
	started := time.Now()
	for i, o := range objs {
		if _, err := c.Apply(ctx, o.Unstructured, false); err != nil {
			return d.failApply(ctx, c, store, rec, result, fmt.Errorf("%s: %w", o.Source, err))
		}
		log.Info("applied", "object", kube.Ref(o.Unstructured))
		if i == 0 {
			crashpoint.Hit("deploy:applying")
		}
		crashpoint.Hit("deploy:applied:" + o.GetKind())
		if o.GetKind() == "CustomResourceDefinition" {
			if err := c.WaitEstablished(ctx, o.GetName()); err != nil {
				return d.failApply(ctx, c, store, rec, result, err)
			}
		}
	}
	if d.AfterApply != nil {
		if err := d.AfterApply(ctx, c, ns); err != nil {
			return d.failApply(ctx, c, store, rec, result, err)
		}
	}
	result.AppliedAt = time.Now()
	crashpoint.Hit("deploy:applied")
	rec.Outcome = release.Tracking
	rec.Timings.AppliedAt = result.AppliedAt.UTC()
	if err := store.Update(ctx, rec); err != nil {
		return result, err
	}
	crashpoint.Hit("deploy:tracking")

	var targets []track.Target
	for _, o := range objs {
		switch {
		case track.Trackable(o.GetKind()):
			targets = append(targets, track.Target{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()})
		case track.Followed(o.Unstructured):
			targets = append(targets, track.Target{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName(), APIVersion: o.GetAPIVersion()})
		}
	}
	// Events are stamped by the cluster's clock; allow for a little skew so the release's own first
	// signals are never discarded as stale.
	ws, err := d.trackAt(ctx, c, targets, started.Add(-2*time.Second), result.AppliedAt, "deploy:first-update")
	result.FinishedAt = time.Now()
	result.Workloads = ws
	for i := range result.Workloads {
		result.Workloads[i].Images = imagesOf(objs, result.Workloads[i].Kind, result.Workloads[i].Namespace, result.Workloads[i].Name)
	}
	if err != nil {
		if cause := stopCause(ctx); cause != nil {
			return halt(ctx, store, rec, result, stageTracking, cause)
		}
		return result, err
	}
	recordVerdicts(rec, ws)
	recordRevisions(ctx, c, rec)
	result.Message = summary(ws)
	if outcomeOf(ws) == report.Succeeded {
		// A run whose lock was taken may have watched the next run's rollout become healthy: only the
		// holder may call the release a success.
		if err := lk.Verify(ctx); err != nil {
			return halt(ctx, store, rec, result, stageFinishing, err)
		}
		result.Outcome = report.Succeeded
		return result, finish(ctx, store, rec, release.Succeeded)
	}
	crashpoint.Hit("deploy:failed")
	return d.onFailure(ctx, c, store, rec, result, onFailure)
}

// validate checks every object against the cluster without changing anything: namespaces exist (or come
// with the release), and a server-side dry-run accepts each object (schema, unknown fields, admission,
// quota, permissions).
func (d *Deploy) validate(ctx context.Context, c *kube.Client, objs []*manifest.Object, crds map[schema.GroupKind]bool) error {
	created := map[string]bool{}
	for _, o := range objs {
		if o.GetKind() == "Namespace" && o.GroupVersionKind().Group == "" {
			created[o.GetName()] = true
		}
	}
	exists := map[string]bool{}
	for _, o := range objs {
		ns := o.GetNamespace()
		if ns == "" || created[ns] {
			continue
		}
		ok, seen := exists[ns]
		if !seen {
			var err error
			if ok, err = c.NamespaceExists(ctx, ns); err != nil {
				return err
			}
			exists[ns] = ok
		}
		if !ok {
			return exitcode.BadInputf("%s: namespace %q does not exist: create it, or add a Namespace object to the manifests", o.Source, ns)
		}
	}
	var failed []error
	for _, o := range objs {
		// Objects inside a namespace, or of a kind, that the release itself creates cannot be dry-run
		// before their parent exists; the apiserver validates them when they are applied.
		if created[o.GetNamespace()] || crds[o.GroupVersionKind().GroupKind()] {
			continue
		}
		if _, err := c.Apply(ctx, o.Unstructured, true); err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", o.Source, err))
		}
	}
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return keepCode(failed[0])
	default:
		return keepCode(fmt.Errorf("%w (and %d more objects failed validation; nothing was applied)", failed[0], len(failed)-1))
	}
}

// keepCode makes sure a validation failure carries an exit code: 3 unless the error already says 4.
func keepCode(err error) error {
	var ec *exitcode.Error
	if errors.As(err, &ec) {
		return &exitcode.Error{Code: ec.Code, Err: err}
	}
	return exitcode.New(exitcode.BadInput, err)
}

// crdScopes maps each group/kind defined by a CRD in the release to whether it is namespaced.
func crdScopes(objs []*manifest.Object) map[schema.GroupKind]bool {
	out := map[schema.GroupKind]bool{}
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
		scope, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
		out[schema.GroupKind{Group: group, Kind: kind}] = scope != "Cluster"
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
