// Package track follows the rollout of a release's workloads through watches and asks the diagnosis core,
// after every change, whether the workload it belongs to is healthy, still progressing or failed. It returns as soon as the
// answer is final: all healthy, or any failed (a failing release should be rolled back now, not when the
// slowest workload finishes).
package track

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/revision"
)

// Target is one workload to follow.
type Target struct {
	Kind      string // Deployment, StatefulSet, DaemonSet or Job, or a custom resource's kind
	Namespace string
	Name      string
	// APIVersion is set for custom resources (custom.go), e.g. "cert-manager.io/v1".
	APIVersion string
	// Verify marks a Job of the release's verify phase: its failure is VerificationFailed.
	Verify bool
}

func (t Target) String() string { return t.Kind + "/" + t.Name }

// Trackable reports whether rollguard knows how to follow a kind's rollout (or, for a Job, its run): the
// built-in workloads only, so a custom resource named Deployment is not taken for one.
func Trackable(gk schema.GroupKind) bool {
	switch gk {
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}, schema.GroupKind{Group: "apps", Kind: "StatefulSet"},
		schema.GroupKind{Group: "apps", Kind: "DaemonSet"}, schema.GroupKind{Group: "batch", Kind: "Job"}:
		return true
	}
	return false
}

// Status is a target's latest verdict.
type Status struct {
	Target
	Verdict diagnose.Verdict
	// DetectedAt is when rollguard saw the verdict become final (healthy or failed); zero while progressing.
	DetectedAt time.Time
	// Revision is, for a Deployment with a final verdict, the revision it ran then, from the caches
	// (revision.OfCachedDeployment): the release record names it without another read of the API.
	Revision revision.Now
}

// Options tune a tracking run.
type Options struct {
	Thresholds diagnose.Thresholds
	// Started is when the change was applied; signals from before it are ignored.
	Started time.Time
	// KnownStartup maps "Kind/name" to how long the workload's previous revision took to become ready, when
	// the caller knows it from elsewhere (a release record); the old pods themselves are read too.
	KnownStartup map[string]time.Duration
	// Deadline ends tracking with a Timeout verdict for whatever has not finished.
	Deadline time.Time
	// Applied, when set, tells whether a target's change has been applied yet, and the generation the
	// write gave it (0: unknown): tracking starts while a large release is still being applied, and a
	// target is not judged before its change is in and the caches hold it (until then its cached object is
	// the previous revision, healthy or broken); it stays progressing and keeps tracking going.
	Applied func(Target) (generation int64, applied bool)
	// OnUpdate receives every target's status whenever any of them changes.
	OnUpdate func([]Status)
	// Bake judges the targets by diagnose.Bake instead of Diagnose: they were healthy at Started and must
	// stay so until Deadline, when they are healthy.
	Bake bool
	// Tick is how often time-based rules (grace windows, deadline) are re-evaluated from the caches for
	// the workloads whose objects did not change (a release of more than 250 workloads: about every
	// millisecond per workload, recheckEvery). It reads only local caches, never the API. Default 250ms.
	Tick time.Duration
	Log  *slog.Logger
	// Source, when set, supplies the input of the built-in kinds from caches the caller keeps already,
	// instead of Track starting seven watches per namespace.
	Source Source
}

// Source reads the diagnosis input of targets from a caller's own caches. The guard has one watch per
// kind for the whole cluster; verifying fifty rollbacks at once through Track's own watches would list
// and watch fifty namespaces again, and queue those requests behind the guard's client-side rate limit.
type Source interface {
	// Input is what the diagnosis needs about t (Now, Started, Deadline and Logs are Track's); a target
	// the caches do not hold yet has a nil Workload.
	Input(ctx context.Context, t Target) (diagnose.Input, error)
	// Autoscaler is the cluster's node autoscaler, as the caller last looked it up.
	Autoscaler(ctx context.Context) diagnose.Autoscaler
}

// Track follows targets until every one is healthy, one has failed, the deadline passes or ctx ends.
// The number of watches is fixed per namespace (seven), whatever the number of workloads; with
// opts.Source, Track opens none for the built-in kinds.
func Track(ctx context.Context, c *kube.Client, targets []Target, opts Options) ([]Status, error) {
	if len(targets) == 0 {
		return nil, nil
	}
	if opts.Tick == 0 {
		opts.Tick = 250 * time.Millisecond
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	ch := newChanges(targets)
	caches := map[string]*nsCache{}
	for _, t := range targets {
		if opts.Source == nil && caches[t.Namespace] == nil {
			nc, err := startNamespace(ctx, c, t.Namespace, ch)
			if err != nil {
				return nil, err
			}
			caches[t.Namespace] = nc
		}
	}

	custom, customKeys, err := startCustom(ctx, c, targets, ch.wake)
	if err != nil {
		return nil, err
	}
	logs := newLogCache(c)
	var autoscaler diagnose.Autoscaler
	if opts.Source != nil {
		autoscaler = opts.Source.Autoscaler(ctx)
	} else {
		autoscaler = c.Autoscaler(ctx)
	}
	// The previous revision's start-up time is read from its pods while they exist; during the rollout they
	// go away (Recreate deletes them first), so each target keeps the first time it saw.
	startups := make([]time.Duration, len(targets))
	startupRead := make([]bool, len(targets))
	configs := newConfigLookup(c)
	statuses := make([]Status, len(targets))
	for i, t := range targets {
		statuses[i] = Status{Target: t, Verdict: diagnose.Verdict{Status: diagnose.Progressing}}
	}
	// A target is judged when its objects changed (changes), when it is first in the caches at the
	// generation its write gave it (ready), and, while its verdict can still change with time alone, every
	// Tick (less often when many are timed: recheckEvery): during a bake, once the deadline has passed, and
	// while a rule times a finding of it (timing, from Verdict.Unconfirmed: a grace window, a probe budget).
	// Custom resources and a caller's Source are not traced to targets: they are judged on every pass.
	// A wait a rule counts is re-judged when it ends (due, from Verdict.Due), not at the next tick; and
	// each target remembers when it first saw the states its waits count from (seen, Verdict.Anchors): a
	// state the API dates in whole seconds began no later than it was seen.
	ready := make([]bool, len(targets))
	judged := make([]time.Time, len(targets))
	timing, nTiming := make([]bool, len(targets)), 0
	due := make([]time.Time, len(targets))
	seen := make([]map[string]time.Time, len(targets))
	wake := time.NewTimer(time.Hour)
	wake.Stop()
	defer wake.Stop()
	settle := settleFor(len(targets))
	ticker := time.NewTicker(opts.Tick)
	defer ticker.Stop()
	settled := time.NewTimer(settle)
	defer settled.Stop()
	ticked := true
	var passes, judgements, onTime int
	defer func() {
		opts.Log.Debug("tracking ended", "passes", passes, "judgements", judgements, "as time passed", onTime, "workloads", len(targets))
	}()
	for {
		passes++
		now := time.Now()
		dirty := ch.take()
		anyChange := false
		fetched := logs.get() // one snapshot per pass, refreshed only when new lines arrive
		late := !opts.Deadline.IsZero() && !now.Before(opts.Deadline)
		recheck := recheckEvery(opts.Tick, nTiming)
		if opts.Bake || late {
			recheck = recheckEvery(opts.Tick, len(targets))
		}
		for i, t := range targets {
			always := t.custom() || opts.Source != nil
			timed := ticked && now.Sub(judged[i]) >= recheck &&
				(opts.Bake || statuses[i].Verdict.Status != diagnose.Healthy && (timing[i] || late)) ||
				!due[i].IsZero() && !now.Before(due[i])
			if ready[i] && !always && !dirty[i] && !timed {
				continue
			}
			var generation int64
			if opts.Applied != nil {
				var applied bool
				if generation, applied = opts.Applied(t); !applied {
					continue
				}
			}
			var in diagnose.Input
			switch {
			case t.custom():
				in = custom.input(customKeys[t], t)
			case opts.Source != nil:
				var err error
				if in, err = opts.Source.Input(ctx, t); err != nil {
					// A cache read fails only while the caller is stopping; judge it on the next pass.
					opts.Log.Debug("reading the caller's caches", "workload", t.String(), "error", err)
				}
			default:
				nc := caches[t.Namespace]
				w := nc.workload(t)
				if behind(w, generation) {
					continue
				}
				in = nc.input(w)
			}
			if behind(in.Workload, generation) {
				continue
			}
			if ready[i] && !always && !dirty[i] {
				onTime++
			}
			ready[i], judged[i] = true, now
			judgements++
			in.Now, in.Started, in.Deadline = now, opts.Started, opts.Deadline
			in.Logs = fetched
			// Read at the first judgement, when the caches hold the previous revision's pods as the change
			// found them; a first release has none, and looking again on every judgement would find none.
			if !startupRead[i] {
				startups[i], startupRead[i] = diagnose.PreviousStartup(in), true
			}
			in.KnownStartup, in.Autoscaler = max(startups[i], opts.KnownStartup[t.String()]), autoscaler
			in.Verification = t.Verify
			in.Config = configs.facts(ctx, t.Namespace, in, now)
			in.Seen = seen[i]
			judge := diagnose.Diagnose
			if opts.Bake {
				judge = diagnose.Bake
			}
			v := judge(in, opts.Thresholds)
			if wantsLogs(v.Reason) && logs.want(ctx, in.Pods) {
				fetched = logs.get()
				in.Logs = fetched
				v = judge(in, opts.Thresholds)
			}
			seen[i], due[i] = v.Sighted(seen[i], time.Now()), v.Due
			if t := v.Unconfirmed != ""; t != timing[i] {
				timing[i] = t
				if t {
					nTiming++
				} else {
					nTiming--
				}
			}
			prev := statuses[i]
			if v.Status != prev.Verdict.Status || v.Progress != prev.Verdict.Progress || v.Reason != prev.Verdict.Reason || v.Message != prev.Verdict.Message {
				anyChange = true
				st := Status{Target: t, Verdict: v}
				if v.Status != diagnose.Progressing {
					st.DetectedAt = now
					st.Revision = revisionOf(in)
				}
				statuses[i] = st
				opts.Log.Debug("verdict", "workload", t.String(), "status", v.Status, "reason", v.Reason, "progress", v.Progress)
			}
		}
		if anyChange && opts.OnUpdate != nil {
			opts.OnUpdate(append([]Status(nil), statuses...))
		}
		if allHealthy, anyFailed := outcome(statuses, ready); allHealthy || anyFailed {
			return statuses, nil
		}
		ticked = false
		if next := earliestDue(due); !next.IsZero() {
			wake.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return statuses, ctx.Err()
		case <-ch.signal:
			if wait := settle - time.Since(now); wait > 0 {
				settled.Reset(wait)
				select {
				case <-ctx.Done():
					return statuses, ctx.Err()
				case <-settled.C:
				}
			}
		case <-ticker.C:
			ticked = true
		case <-wake.C:
		}
	}
}

// revisionOf is the revision a Deployment in the input runs, zero for other kinds and when the caches may
// not say it yet (revision.OfCachedDeployment).
func revisionOf(in diagnose.Input) revision.Now {
	if d, ok := in.Workload.(*appsv1.Deployment); ok {
		if r, settled := revision.OfCachedDeployment(d, in.ReplicaSets); settled {
			return r
		}
	}
	return revision.Now{}
}

// earliestDue is the first of the targets' due times (zero: none).
func earliestDue(due []time.Time) time.Time {
	var next time.Time
	for _, d := range due {
		if !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	return next
}

// outcome says whether every target is judged healthy, and whether any has failed.
func outcome(statuses []Status, ready []bool) (allHealthy, anyFailed bool) {
	allHealthy = true
	for i, st := range statuses {
		allHealthy = allHealthy && ready[i] && st.Verdict.Status == diagnose.Healthy
		anyFailed = anyFailed || st.Verdict.Status == diagnose.Failed
	}
	return allHealthy, anyFailed
}

// nsCache holds the informers of one namespace.
type nsCache struct {
	deployments, statefulSets, daemonSets, jobs, replicaSets, pods, events cache.SharedIndexInformer
}

func startNamespace(ctx context.Context, c *kube.Client, ns string, ch *changes) (*nsCache, error) {
	f := informers.NewSharedInformerFactoryWithOptions(c.Typed, 0, informers.WithNamespace(ns))
	nc := &nsCache{
		deployments:  f.Apps().V1().Deployments().Informer(),
		statefulSets: f.Apps().V1().StatefulSets().Informer(),
		daemonSets:   f.Apps().V1().DaemonSets().Informer(),
		jobs:         f.Batch().V1().Jobs().Informer(),
		replicaSets:  f.Apps().V1().ReplicaSets().Informer(),
		pods:         f.Core().V1().Pods().Informer(),
		events:       f.Core().V1().Events().Informer(),
	}
	if err := nc.addIndexers(); err != nil {
		return nil, fmt.Errorf("watching namespace %s: %w", ns, err)
	}
	h := ch.handler(nc)
	for _, inf := range []cache.SharedIndexInformer{nc.deployments, nc.statefulSets, nc.daemonSets, nc.jobs, nc.replicaSets, nc.pods, nc.events} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, fmt.Errorf("watching namespace %s: %w", ns, err)
		}
		if err := inf.SetTransform(Trim); err != nil {
			return nil, fmt.Errorf("watching namespace %s: %w", ns, err)
		}
		// A watch refused for lack of permission would otherwise retry silently forever.
		_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, r *cache.Reflector, err error) {
			cache.DefaultWatchErrorHandler(ctx, r, err)
		})
	}
	f.Start(ctx.Done())
	synced := f.WaitForCacheSync(ctx.Done())
	for typ, ok := range synced {
		if !ok {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("watching namespace %s: cache for %v did not sync", ns, typ)
		}
	}
	return nc, nil
}

// workload is the target's object in the caches, nil when they do not hold it.
func (nc *nsCache) workload(t Target) runtime.Object {
	var w runtime.Object
	key := t.Namespace + "/" + t.Name
	switch t.Kind {
	case "Deployment":
		if o, ok := get[*appsv1.Deployment](nc.deployments, key); ok {
			w = o
		}
	case "StatefulSet":
		if o, ok := get[*appsv1.StatefulSet](nc.statefulSets, key); ok {
			w = o
		}
	case "DaemonSet":
		if o, ok := get[*appsv1.DaemonSet](nc.daemonSets, key); ok {
			w = o
		}
	case "Job":
		if o, ok := get[*batchv1.Job](nc.jobs, key); ok {
			w = o
		}
	}
	return w
}

// input gathers, from the caches, everything the diagnosis needs about one workload (nil: nothing).
func (nc *nsCache) input(w runtime.Object) diagnose.Input {
	if w == nil {
		return diagnose.Input{}
	}
	rss, pods, events := nc.owned(w)
	return Collect(w, all(rss), all(pods), all(events))
}

func get[T runtime.Object](inf cache.SharedIndexInformer, key string) (T, bool) {
	var zero T
	o, ok, err := inf.GetStore().GetByKey(key)
	if err != nil || !ok {
		return zero, false
	}
	t, ok := o.(T)
	return t, ok
}
