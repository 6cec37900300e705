package action

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/track"
)

// Release phases. A release may carry Jobs that are not part of its rollout:
//
//	pre-deploy  rollguard.dev/phase: pre-deploy, or Helm's helm.sh/hook: pre-install / pre-upgrade. They run
//	            to completion before any workload changes (the expand step of a schema migration). A failed
//	            one fails the release (JobFailed, with its logs) and nothing else is applied.
//	verify      rollguard.dev/phase: verify, or helm.sh/hook: post-install / post-upgrade. They run once every
//	            workload is healthy (smoke tests, can the new version reach its database); a failed one
//	            fails the release with VerificationFailed and the on-failure policy runs.
//
// Other objects of a phase (a ConfigMap the migration reads, as Helm charts ship them) are applied with it,
// before its Jobs. Helm hooks without a phase here (test, rollback and delete hooks) are left out of the
// deploy, as `helm install` leaves them. Within a phase, helm.sh/hook-weight orders, then apply order.
const (
	PhaseAnnotation      = "rollguard.dev/phase"
	ReversibleAnnotation = "rollguard.dev/reversible"
	PhasePreDeploy       = "pre-deploy"
	PhaseVerify          = "verify"
	PhaseBake            = "bake"

	helmHook             = "helm.sh/hook"
	helmHookWeight       = "helm.sh/hook-weight"
	helmHookDeletePolicy = "helm.sh/hook-delete-policy"
	phaseSkipped         = "skipped"
)

// phased is what the phases plan found in a release: its pre-deploy and verify objects, and, once the
// pre-deploy Jobs ran, their verdicts (shown with the rollout's).
type phased struct {
	pre, verify []*manifest.Object
	preDone     []report.Workload
}

// phaseOf says when o is applied: with the rollout (""), in a phase, or phaseSkipped (a Helm hook that a
// deploy does not run). install is whether the app never had a healthy release: Helm's pre-install rather
// than pre-upgrade.
func phaseOf(o *manifest.Object, install bool) (string, error) {
	a := o.GetAnnotations()
	if p, ok := a[PhaseAnnotation]; ok {
		if p != PhasePreDeploy && p != PhaseVerify {
			return "", exitcode.BadInputf("%s: %s %s: %q is not a phase; use %s or %s", o.Source, o, PhaseAnnotation, p, PhasePreDeploy, PhaseVerify)
		}
		return p, nil
	}
	hooks, ok := a[helmHook]
	if !ok {
		return "", nil
	}
	pre, post := "pre-upgrade", "post-upgrade"
	if install {
		pre, post = "pre-install", "post-install"
	}
	for h := range strings.SplitSeq(hooks, ",") {
		switch strings.TrimSpace(h) {
		case pre:
			return PhasePreDeploy, nil
		case post:
			return PhaseVerify, nil
		}
	}
	return phaseSkipped, nil
}

func hasHelmHook(o *manifest.Object) bool {
	_, ok := o.GetAnnotations()[helmHook]
	return ok
}

// planPhases sorts the release's objects into phases, drops the Helm hooks a deploy does not run and checks
// the phase annotations (bad input before anything changes). Reads Objects, Store, Namespace, App.
func (d *Deploy) planPhases(ctx context.Context, s *State) error {
	install := true
	// Only a Helm hook's phase depends on the app's history (pre-install or pre-upgrade): a release without
	// one spares the list of its records (a consistent list, which waits for the API server's cache).
	if s.Store != nil && slices.ContainsFunc(s.Objects, hasHelmHook) {
		last, err := s.Store.Latest(ctx, s.Namespace, s.App)
		if err != nil {
			return err
		}
		install = release.RestorePoint(last) == ""
	}
	var keep []*manifest.Object
	for _, o := range s.Objects {
		p, err := phaseOf(o, install)
		if err != nil {
			return err
		}
		switch p {
		case phaseSkipped:
			d.logger().Info("leaving out a Helm hook a deploy does not run", "object", o.String(), "hook", o.GetAnnotations()[helmHook])
			continue
		case PhasePreDeploy:
			s.phases.pre = append(s.phases.pre, o)
		case PhaseVerify:
			s.phases.verify = append(s.phases.verify, o)
		}
		if v, ok := o.GetAnnotations()[ReversibleAnnotation]; ok && v != "true" && v != "false" {
			return exitcode.BadInputf("%s: %s %s: %q must be \"true\" or \"false\"", o.Source, o, ReversibleAnnotation, v)
		} else if ok && p != PhasePreDeploy {
			return exitcode.BadInputf("%s: %s is marked %s but is no pre-deploy Job: only a pre-deploy Job can be an irreversible step (annotate it %s: %s)",
				o.Source, o, ReversibleAnnotation, PhaseAnnotation, PhasePreDeploy)
		}
		keep = append(keep, o)
	}
	s.Objects = keep
	byWeight := func(a, b *manifest.Object) int { return hookWeight(a) - hookWeight(b) }
	slices.SortStableFunc(s.phases.pre, byWeight)
	slices.SortStableFunc(s.phases.verify, byWeight)
	return nil
}

func hookWeight(o *manifest.Object) int {
	w, _ := strconv.Atoi(strings.TrimSpace(o.GetAnnotations()[helmHookWeight]))
	return w
}

// recreated reports whether a phase's Job is deleted and created afresh rather than applied: a verify Job
// must check this release, not report an earlier run, and Helm hooks are re-created by default
// (hook-delete-policy before-hook-creation). An unchanged rollguard pre-deploy Job is not run twice, which
// is also what lets a killed run converge without repeating a migration.
func recreated(o *manifest.Object, phase string) bool {
	if o.GetKind() != "Job" || o.GroupVersionKind().Group != "batch" {
		return false
	}
	if phase == PhaseVerify {
		return true
	}
	hooks, policy := o.GetAnnotations()[helmHook], o.GetAnnotations()[helmHookDeletePolicy]
	return hooks != "" && (policy == "" || strings.Contains(policy, "before-hook-creation"))
}

// preDeploy runs the pre-deploy phase after the release is recorded: its objects are applied and its Jobs
// followed to completion before any workload changes. From here on, Objects are what the apply phase applies
// and the track phase follows: the rollout alone. A failed Job fails the release and nothing else is applied;
// a succeeded irreversible Job changes the on-failure policy (irreversible.go).
func (d *Deploy) preDeploy(ctx context.Context, s *State) error {
	for _, w := range s.warnings {
		d.event("warning: " + w)
	}
	s.Result.Warnings = append(s.Result.Warnings, s.warnings...)
	s.Objects = slices.DeleteFunc(slices.Clone(s.Objects), func(o *manifest.Object) bool {
		return slices.Contains(s.phases.pre, o) || slices.Contains(s.phases.verify, o)
	})
	if len(s.phases.pre) == 0 {
		return nil
	}
	ws, ok, err := d.runPhase(ctx, s, PhasePreDeploy, s.phases.pre)
	if err != nil || s.Done {
		return err
	}
	s.phases.preDone = ws
	if !ok {
		// Only the pre-deploy objects changed: restoring them is all a rollback has to do (a record
		// inherited from a killed run keeps everything, since that run may have changed anything).
		if s.Inherited == nil {
			onlyChanged(s.Record, s.phases.pre)
		}
		return d.failPhase(ctx, s, ws)
	}
	crashpoint.Hit("deploy:pre-deployed")
	return d.markIrreversible(ctx, s, ws)
}

// verify runs the verify phase once every workload is healthy, and puts the pre-deploy Jobs' verdicts in
// front of the rollout's. A failed verify Job is a failed workload (VerificationFailed) that decide hands
// to the on-failure policy.
func (d *Deploy) verify(ctx context.Context, s *State) error {
	s.Workloads = append(slices.Clone(s.phases.preDone), s.Workloads...)
	if s.Result != nil {
		s.Result.Workloads = append(slices.Clone(s.phases.preDone), s.Result.Workloads...)
	}
	if len(s.phases.verify) == 0 || outcomeOf(s.Workloads) != report.Succeeded {
		return nil
	}
	ws, _, err := d.runPhase(ctx, s, PhaseVerify, s.phases.verify)
	if err != nil || s.Done {
		return err
	}
	s.Workloads = append(s.Workloads, ws...)
	s.Result.Workloads = append(s.Result.Workloads, ws...)
	s.Result.FinishedAt = time.Now()
	return nil
}

// runPhase applies a phase's objects in order and follows its Jobs until all completed or one failed. It
// records the phase in the record and the result. ok is whether every Job completed. A run stopped while
// in it (interrupted, lock lost) is closed with halt and Done set.
func (d *Deploy) runPhase(ctx context.Context, s *State, name string, objs []*manifest.Object) ([]report.Workload, bool, error) {
	started := time.Now()
	var targets []track.Target
	var jobs []string
	for _, o := range objs {
		if o.GetKind() == "Job" {
			targets = append(targets, track.Target{Kind: "Job", Namespace: o.GetNamespace(), Name: o.GetName(), Verify: name == PhaseVerify})
			jobs = append(jobs, "Job/"+o.GetName())
		}
	}
	d.event(fmt.Sprintf("%s: running %s", name, strings.Join(jobs, ", ")))
	for _, o := range objs {
		var err error
		if recreated(o, name) {
			_, err = s.Client.Recreate(ctx, o.Unstructured)
		} else {
			_, err = s.Client.Apply(ctx, o.Unstructured, false)
		}
		if err != nil {
			s.Done = true
			d.phaseDone(s, name, report.Failed, started, "applying "+o.String()+" failed")
			_, err = d.failApply(ctx, s.Client, s.Store, s.Record, s.Result, s.OnFailure, fmt.Errorf("%s: %w", o.Source, err))
			return nil, false, err
		}
		d.logger().Info("applied", "phase", name, "object", o.String())
	}
	if name == PhaseVerify {
		crashpoint.Hit("deploy:verifying")
	}
	ws, err := d.trackAt(ctx, s.Client, targets, started.Add(-2*time.Second), started, "")
	for i := range ws {
		ws[i].Phase = name
		ws[i].Images = imagesOf(objs, ws[i].Kind, ws[i].Namespace, ws[i].Name)
	}
	if cause := stopCause(ctx); cause != nil {
		s.Done = true
		d.phaseDone(s, name, report.Interrupted, started, "stopped while running "+strings.Join(jobs, ", "))
		s.Result.Workloads = ws
		_, err = halt(ctx, s.Store, s.Record, s.Result, name+" Jobs running", cause)
		return nil, false, err
	}
	if err != nil {
		return nil, false, err
	}
	if outcomeOf(ws) != report.Succeeded {
		d.phaseDone(s, name, report.Failed, started, summary(ws))
		return ws, false, nil
	}
	d.phaseDone(s, name, report.Succeeded, started, fmt.Sprintf("%s completed: %s", plural(len(jobs), "Job"), strings.Join(jobs, ", ")))
	return ws, true, nil
}

// phaseDone notes how a phase ended, in the record, the result and the progress output.
func (d *Deploy) phaseDone(s *State, name string, outcome report.Outcome, started time.Time, msg string) {
	now := time.Now()
	p := report.Phase{Name: name, Outcome: outcome, StartedAt: started, FinishedAt: now, Message: msg}
	s.Result.Phases = append(s.Result.Phases, p)
	s.Record.Phases = append(s.Record.Phases, release.Phase{Name: name, Outcome: string(outcome), StartedAt: started.UTC(), FinishedAt: now.UTC(), Message: msg})
	d.event(p.Line())
}

// failPhase ends a release whose pre-deploy phase failed: the Jobs' verdicts are the release's, and the
// on-failure policy runs.
func (d *Deploy) failPhase(ctx context.Context, s *State, ws []report.Workload) error {
	s.Done = true
	s.Workloads, s.Result.Workloads = ws, ws
	s.Result.AppliedAt, s.Result.FinishedAt = time.Now(), time.Now()
	recordVerdicts(s.Record, ws)
	s.Result.Message = summary(ws) + "; no workload was changed"
	crashpoint.Hit("deploy:failed")
	_, err := d.onFailure(ctx, s.Client, s.Store, s.Record, s.Result, s.OnFailure)
	return err
}

// onlyChanged narrows a record to the objects the release changed so far (and their workloads), so that
// restoring it touches nothing else.
func onlyChanged(rec *release.Record, changed []*manifest.Object) {
	is := func(kind, ns, name string) bool {
		return slices.ContainsFunc(changed, func(o *manifest.Object) bool {
			return o.GetKind() == kind && o.GetNamespace() == ns && o.GetName() == name
		})
	}
	rec.Objects = slices.DeleteFunc(rec.Objects, func(o release.ObjectState) bool { return !is(o.Kind, o.Namespace, o.Name) })
	rec.Workloads = slices.DeleteFunc(rec.Workloads, func(w release.WorkloadState) bool { return !is(w.Kind, w.Namespace, w.Name) })
}
