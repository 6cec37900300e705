package action

import (
	"context"
	"io"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rollguard/rollguard/internal/crashpoint"
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
	// Objects, when set, are the release's objects instead of Files (promote hands over what it read).
	Objects []*manifest.Object
	Stdin   io.Reader
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
	// OnFailure is rollback (default), approve, hold or none; validated by ParseOnFailure.
	OnFailure string
	// OnIrreversible replaces an automatic rollback once an irreversible pre-deploy Job succeeded: hold
	// (default), approve or rollback (irreversible.go).
	OnIrreversible string
	// Bake keeps watching a healthy release this long (bake.go); 0 skips the bake window.
	Bake time.Duration
	// RequireProbes refuses (exit 3) a workload without a readinessProbe instead of warning (probes.go).
	RequireProbes bool
	Approval
	// WaitForLock is how long to wait while another run deploys or rolls back the same app.
	WaitForLock time.Duration
	// LockTTL is how long the lock outlives a run that died (default 30s).
	LockTTL time.Duration
	// held is this run's lock on the app, once acquired.
	held *lock.Lock
	// SkipPodPreflight leaves refused pods to tracking instead of dry-run creating one per workload first.
	SkipPodPreflight bool
	// Explicit says which settings were given explicitly, by flag name (Setting*); nil means none were.
	// Approval settings given with an on-failure policy other than approve are refused as bad input.
	Explicit func(setting string) bool
	// AfterApply, when set, runs once every object is applied, before tracking (an environment's access
	// policy, so a new Ingress is not left open while the rollout is watched). An error fails the release.
	AfterApply func(ctx context.Context, c *kube.Client, ns string) error
}

// Phases is the deploy, step by step. Nothing is applied unless every object passed local checks, a
// server-side dry-run and the permission preflight; nothing changes before the previous state is recorded.
// A new step goes into this list (or InsertPhase) at the place it belongs.
func (d *Deploy) Phases() []Phase {
	return []Phase{
		{Name: "load", Run: d.load},
		{Name: "connect", Run: d.connect},
		{Name: "validate", Run: d.validatePhase},
		{Name: "plan-phases", Run: d.planPhases},
		{Name: "probe-lint", Run: d.probeLint},
		{Name: "pod-preflight", Run: d.podPreflightPhase},
		{Name: "preflight", Run: d.preflightPhase},
		{Name: "namespaces", Run: d.namespaces},
		lockPhase(d.Watch, d.lockOptions(), "deploy:locked", true),
		{Name: "record", Run: d.record},
		{Name: PhasePreDeploy, Run: d.preDeploy},
		{Name: "apply", Run: d.apply},
		d.trackPhase(),
		{Name: PhaseVerify, Run: d.verify},
		{Name: PhaseBake, Run: d.bake},
		{Name: "decide", Run: d.decide},
	}
}

// Run runs the deploy's phases and reports.
func (d *Deploy) Run(ctx context.Context) (*report.Result, error) {
	return runPhases(ctx, &State{log: d.logger()}, d.Phases())
}

// validatePhase starts the dry-run of every object (settled by preflight: checks.go) and validates the app
// name and on-failure policy. Fills App and OnFailure.
func (d *Deploy) validatePhase(ctx context.Context, s *State) error {
	c, objs, crds := s.Client, s.Objects, s.CRDs
	s.inBackground(ctx, func(ctx context.Context) error { return d.validate(ctx, c, objs, crds) })
	s.App = d.App
	if s.App == "" {
		s.App = defaultApp(s.Objects)
	}
	if err := release.ValidateApp(s.App); err != nil {
		return err
	}
	var err error
	s.OnFailure, err = ParseOnFailure(d.OnFailure)
	return err
}

// podPreflightPhase starts the dry-run create of one pod per workload template (settled by preflight), so
// pods the cluster would refuse are bad input (exit 3) before anything changes (podpreflight.go).
func (d *Deploy) podPreflightPhase(ctx context.Context, s *State) error {
	if d.SkipPodPreflight {
		return nil
	}
	c, objs, log := s.Client, s.Objects, d.logger()
	s.inBackground(ctx, func(ctx context.Context) error { return podPreflight(ctx, c, objs, log) })
	return nil
}

// preflightPhase refuses a release this identity could not finish or roll back, then waits for the dry-runs
// validate and pod-preflight started: the last check before the first change.
func (d *Deploy) preflightPhase(ctx context.Context, s *State) error {
	if err := s.settle(d.preflight(ctx, s.Client, s.Namespace, s.Objects, s.OnFailure)); err != nil {
		return err
	}
	crashpoint.Hit("deploy:validated")
	return nil
}

// namespaces creates the Namespaces the release brings: the lock and the record live in the release's
// namespace. A rollback keeps them: deleting a namespace would delete the release history with it.
func (d *Deploy) namespaces(ctx context.Context, s *State) error {
	return createNamespaces(ctx, s.Client, s.Objects)
}

func (d *Deploy) lockOptions() lock.Options {
	log := d.logger()
	return lock.Options{Wait: d.WaitForLock, TTL: d.LockTTL, OnWait: func(holder string, since time.Time) {
		log.Warn("waiting for another run to finish", "holder", holder, "since", since)
	}}
}

// record converges what an earlier run left, captures the previous state of everything the release will
// change and records it before anything changes. Fills Record, Inherited and Result.
func (d *Deploy) record(ctx context.Context, s *State) error {
	d.held = s.lock
	// Who deploys is asked of the cluster (a SelfSubjectReview) while the records and the previous state
	// are read: one round trip less between the lock and the apply.
	ci := manifest.DetectCI(s.getenv)
	identity := make(chan string, 1)
	go func() { identity <- release.Identity(ctx, s.Client, ci) }()
	// One listing of the app's records serves converge and the new record's number (a list waits for
	// the API server's cache); a converge that finished a rollback changed them, and Create lists again.
	listing, err := s.Store.ListApp(ctx, s.Namespace, s.App)
	if err != nil {
		return stoppedBeforeChange(ctx, err)
	}
	inherited, last, changed, err := d.converge(ctx, s.Client, s.Store, listing)
	if err != nil {
		return stoppedBeforeChange(ctx, err)
	}
	if changed {
		listing = nil
	}
	states, wstates, err := captureState(ctx, s.Client, s.Objects, inherited)
	if err != nil {
		return stoppedBeforeChange(ctx, err)
	}
	rec := &release.Record{
		App: s.App, Namespace: s.Namespace, Environment: d.Environment, DeployedBy: <-identity, CI: ci,
		ChangeCause: s.Cause, Objects: states, Workloads: wstates, Outcome: release.Applying,
		RestoresTo: release.RestorePoint(last),
	}
	if err := s.Store.CreateListed(ctx, rec, listing); err != nil {
		return stoppedBeforeChange(ctx, err)
	}
	// A killed or pending release is closed as failed; one that already says how it stopped keeps that.
	if inherited != nil && inherited.Outcome != release.Interrupted && inherited.Outcome != release.Superseded {
		inherited.Message = "interrupted; superseded by " + rec.ID
		if err := finish(ctx, s.Store, inherited, release.Failed); err != nil {
			return err
		}
	}
	d.logger().Info("recorded release", "release", rec.ID)
	crashpoint.Hit("deploy:recorded")
	s.Record, s.Inherited = rec, inherited
	s.Result = &report.Result{Command: "deploy", Release: rec.ID, Namespace: s.Namespace, ChangeCause: s.Cause}
	return nil
}

// apply applies the objects group by group, each group's at once (applyObjects), then the AfterApply hook,
// and marks the record tracking. Tracking starts with the apply: each workload is judged from the moment
// it is applied (liveTracking), and the track phase collects the verdicts. An apply that fails after the
// dry-run passed goes through the on-failure policy. Fills Started, Since, Targets.
func (d *Deploy) apply(ctx context.Context, s *State) error {
	c, result := s.Client, s.Result
	s.Started = time.Now()
	s.Since = s.Started
	s.Targets = targetsOf(s.Objects)
	w := d.Watch
	s.knownStartup = knownStartups(ctx, s)
	w.KnownStartup = s.knownStartup
	// Events are stamped by the cluster's clock; allow for a little skew so the release's own first
	// signals are never discarded as stale.
	live := startTracking(ctx, w, c, s.Targets, s.Started.Add(-2*time.Second), s.Since, "deploy:first-update")
	failed := func(err error) error {
		live.stop()
		s.Done = true
		_, err = d.failApply(ctx, c, s.Store, s.Record, result, s.OnFailure, err)
		return err
	}
	err := applyObjects(ctx, c, s.Objects, s.Record, d.logger(), func(o *manifest.Object, written *unstructured.Unstructured) {
		if t, ok := targetOf(o); ok {
			live.mark(t, written)
		}
	})
	if err != nil {
		return failed(err)
	}
	if d.AfterApply != nil {
		if err := d.AfterApply(ctx, c, s.Namespace); err != nil {
			return failed(err)
		}
	}
	result.AppliedAt = time.Now()
	crashpoint.Hit("deploy:applied")
	s.Record.Outcome = release.Tracking
	s.Record.Timings.AppliedAt = result.AppliedAt.UTC()
	if err := s.Store.Update(ctx, s.Record); err != nil {
		live.stop()
		// Stopped as the record was written: everything is applied, nothing verified.
		if cause := stopCause(ctx); cause != nil {
			s.Done = true
			_, err = halt(ctx, s.Store, s.Record, result, stageTracking, cause)
		}
		return err
	}
	crashpoint.Hit("deploy:tracking")
	s.tracking = live
	return nil
}

// targetsOf is what a deploy of objs tracks: its workloads and the custom resources it follows.
func targetsOf(objs []*manifest.Object) []track.Target {
	var out []track.Target
	for _, o := range objs {
		if t, ok := targetOf(o); ok {
			out = append(out, t)
		}
	}
	return out
}

func targetOf(o *manifest.Object) (track.Target, bool) {
	switch {
	case track.Trackable(o.GroupVersionKind().GroupKind()):
		return track.Target{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}, true
	case track.Followed(o.Unstructured):
		return track.Target{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName(), APIVersion: o.GetAPIVersion()}, true
	}
	return track.Target{}, false
}

// trackPhase is the shared track phase, learning start-up times from the app's last successful release; a
// run stopped while tracking (interrupted, or its lock taken) records where it stopped instead of deciding.
func (d *Deploy) trackPhase() Phase {
	tracked := haltWhenStopped(trackPhase(d.Watch, "deploy:first-update"), stageTracking)
	return Phase{Name: tracked.Name, Run: func(ctx context.Context, s *State) error {
		if s.tracking == nil {
			s.knownStartup = knownStartups(ctx, s)
		}
		return tracked.Run(ctx, s)
	}}
}

// decide records the verdicts and ends the release: succeeded, or through the on-failure policy.
func (d *Deploy) decide(ctx context.Context, s *State) error {
	rec, result := s.Record, s.Result
	recordVerdicts(rec, s.Workloads)
	recordRevisions(ctx, s.Client, rec, s.Workloads)
	result.Message = summary(s.Workloads)
	if outcomeOf(s.Workloads) == report.Succeeded {
		// A run whose lock was taken may have watched the next run's rollout become healthy: only the
		// holder may call the release a success.
		if err := s.lock.Verify(ctx); err != nil {
			_, err = halt(ctx, s.Store, rec, result, stageFinishing, err)
			return err
		}
		result.Outcome = report.Succeeded
		return finish(ctx, s.Store, rec, release.Succeeded)
	}
	crashpoint.Hit("deploy:failed")
	_, err := d.onFailure(ctx, s.Client, s.Store, rec, result, s.OnFailure)
	return err
}
