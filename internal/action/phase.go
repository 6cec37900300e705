package action

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/lock"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/track"
)

// Phase is one step of a release run. A deploy is load → connect → validate → plan-phases → probe-lint → pod-preflight →
// preflight → namespaces → lock → record → pre-deploy → apply → track → verify → bake → decide
// (Deploy.Phases). A new step is one more Phase in the list, at the place it belongs, instead of more lines
// in one function.
type Phase struct {
	// Name is how logs and docs refer to the step ("preflight").
	Name string
	// Run does the step. An error ends the run and is returned with State.Result; setting State.Done ends
	// it early without an error (a handled failure).
	Run func(ctx context.Context, s *State) error
}

// State is what the phases of one run hand to each other. Each phase documents which fields it reads
// and which it fills; the zero value is the state before the first phase.
type State struct {
	// Client is the cluster connection (filled by the connect phase).
	Client *kube.Client
	// Store keeps the release records (filled with Client).
	Store *release.Store
	// Namespace holds the release's records and lock; App names the release.
	Namespace, App string

	// Objects are the release's objects, in apply order; CRDs maps a kind a CRD of the release defines to
	// whether it is namespaced (deploy).
	Objects []*manifest.Object
	CRDs    map[schema.GroupKind]bool
	// Cause is the change cause recorded with the release.
	Cause string
	// OnFailure is the validated on-failure policy.
	OnFailure OnFailure

	// Record is this run's release record (filled by record); Inherited is a record an unfinished earlier
	// run left, whose previous state this release takes over.
	Record    *release.Record
	Inherited *release.Record
	// Result is what the run reports (filled by record; nil before: nothing was changed).
	Result *report.Result

	// Targets are the workloads to track; Started is when the first change was made (signals from before
	// are stale, allowing a little clock skew); Since is when the tracking timeout starts.
	Targets []track.Target
	Started time.Time
	Since   time.Time
	// Workloads are the tracked verdicts (filled by track).
	Workloads []report.Workload

	// Done ends the run after the current phase.
	Done bool

	// tracking, when apply started tracking as it applied, is where the track phase collects verdicts.
	tracking *liveTracking

	lock     *lock.Lock
	phases   phased   // the release's pre-deploy and verify objects (jobphase.go)
	warnings []string // shown once the release proceeds (probes.go)
	cancel   context.CancelCauseFunc
	log      *slog.Logger   // phase timings (runPhases); nil logs none
	pending  []<-chan error // checks running in the background until settled (checks.go)
	getenv   func(string) string
	previous []string // containers of --image NAME=previous, resolved once connected
	// knownStartup is what the tracker learns from an earlier release's start-up times (deploy fills it).
	knownStartup map[string]time.Duration

	// A change to one live workload (undo, rollback --to-previous-image): the workload, the change, and
	// the app's records as they were before it (workloadchange.go).
	workload *workload
	change   *workloadChange
	records  []*release.Record
	// Rollback is what restoring a release's previous state did (restore phases, rollback.go).
	Rollback *report.Rollback
}

// runPhases runs phases in order until one fails or sets Done. The context every phase gets is cancelled
// when the run ends, or with cause lock.ErrLost when the lock is lost (stopCause tells which); the lock is
// released however the run ends.
func runPhases(ctx context.Context, s *State, phases []Phase) (*report.Result, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(context.Canceled)
	s.cancel = cancel
	defer func() {
		if s.lock != nil {
			s.lock.Release(context.WithoutCancel(ctx))
		}
	}()
	for _, p := range phases {
		began := time.Now()
		err := p.Run(ctx, s)
		if s.log != nil {
			// How long each step took, at --log-level debug: where a slow deploy spends its time.
			s.log.Debug("phase", "name", p.Name, "took", time.Since(began).Round(time.Millisecond), "failed", err != nil)
		}
		if err != nil {
			return s.Result, s.settle(err)
		}
		if s.Done {
			break
		}
	}
	return s.Result, nil
}

// InsertPhase returns phases with p placed right after the phase named after; it panics on an unknown name,
// which is a programming error caught by any test that runs the list.
func InsertPhase(phases []Phase, after string, p Phase) []Phase {
	for i, q := range phases {
		if q.Name == after {
			return slices.Insert(slices.Clone(phases), i+1, p)
		}
	}
	panic(fmt.Sprintf("action: no phase %q to insert %q after", after, p.Name))
}

// lockPhase takes the app's lock: one run at a time per app, so a second pipeline waits here before
// anything is recorded or changed. With stopOnLoss, losing the lock later cancels the run. Reads Client,
// Namespace, App.
func lockPhase(w Watch, opts lock.Options, point string, stopOnLoss bool) Phase {
	return Phase{Name: "lock", Run: func(ctx context.Context, s *State) error {
		lk, err := lock.Acquire(ctx, s.Client, s.Namespace, s.App, opts)
		if err != nil {
			return err
		}
		s.lock = lk
		hit(point)
		if !stopOnLoss {
			return nil
		}
		go func() {
			select {
			case <-lk.Lost():
				w.logger().Error("lost the release lock; stopping", "app", s.App)
				s.cancel(lock.ErrLost)
			case <-ctx.Done():
			}
		}()
		return nil
	}}
}

// hit is crashpoint.Hit for an optional point.
func hit(point string) {
	if point != "" {
		crashpoint.Hit(point)
	}
}

// trackPhase follows Targets with the watch options (or collects what the apply phase started following)
// and fills Workloads; with a Result, its workloads,
// images and finish time too. point is the crash point hit at the first verdict update.
func trackPhase(w Watch, point string) Phase {
	return Phase{Name: "track", Run: func(ctx context.Context, s *State) error {
		var ws []report.Workload
		var err error
		if s.tracking != nil {
			ws, err = s.tracking.wait()
		} else {
			// Events are stamped by the cluster's clock; allow for a little skew so the release's own
			// first signals are never discarded as stale.
			w.KnownStartup = s.knownStartup
			ws, err = w.trackAt(ctx, s.Client, s.Targets, s.Started.Add(-2*time.Second), s.Since, point)
		}
		s.Workloads = ws
		if s.Result != nil {
			s.Result.FinishedAt = time.Now()
			s.Result.Workloads = ws
			for i := range s.Result.Workloads {
				rw := &s.Result.Workloads[i]
				rw.Images = imagesOf(s.Objects, rw.Kind, rw.Namespace, rw.Name)
			}
		}
		// Interrupted (signal, lost lock): the record stays "tracking" so the next run converges.
		return err
	}}
}

// haltWhenStopped wraps p so that a run stopped during it (interrupted, or its lock taken) records where it
// stopped (halt, at stage) and ends, instead of failing. Reads Store, Record and Result.
func haltWhenStopped(p Phase, stage string) Phase {
	return Phase{Name: p.Name, Run: func(ctx context.Context, s *State) error {
		err := p.Run(ctx, s)
		if cause := stopCause(ctx); err != nil && cause != nil {
			s.Done = true
			_, err = halt(ctx, s.Store, s.Record, s.Result, stage, cause)
		}
		return err
	}}
}

// knownStartups is what the app's last successful release recorded of its workloads' start-up times,
// "Kind/name" → duration: the readiness wait learns from it when the previous revision's pods are gone
// (Recreate). Records that cannot be read leave it to the old pods, or to the first-deploy slack.
func knownStartups(ctx context.Context, s *State) map[string]time.Duration {
	if s.Store == nil || s.App == "" {
		return nil
	}
	except := ""
	if s.Record != nil {
		except = s.Record.ID
	}
	r, err := s.Store.LastSucceeded(ctx, s.Namespace, s.App, except)
	if err != nil || r == nil {
		return nil
	}
	out := map[string]time.Duration{}
	for _, w := range r.Workloads {
		if w.StartupSeconds > 0 {
			out[w.Kind+"/"+w.Name] = time.Duration(w.StartupSeconds * float64(time.Second))
		}
	}
	return out
}
