// Package action holds one type per user action (Deploy, Status, ...). Each orchestrates the packages below
// it — manifest loading, the kube boundary, tracking and diagnosis — and returns a report.Result; the CLI
// only turns flags into an action's fields and the result into output and an exit code.
package action

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/notify"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/track"
)

// Connector opens the cluster connection. Actions call it only after local input is validated, so a typo in
// a manifest is reported as such even when the cluster is down.
type Connector func(ctx context.Context) (*kube.Client, error)

// Watch is what every tracking action shares.
type Watch struct {
	Timeout    time.Duration
	Thresholds diagnose.Thresholds
	// OnUpdate receives live progress.
	OnUpdate func([]report.Workload)
	// KnownStartup maps "Kind/name" to how long the workload's previous revision took to become ready, from
	// a release record (knownStartups); the tracker also reads the old pods.
	KnownStartup map[string]time.Duration
	// OnEvent receives one-line notices between progress updates ("rolling back ...").
	OnEvent func(string)
	Log     *slog.Logger
	// Notify, when set, tells people about failures, approvals and rollbacks (see internal/notify). It
	// never blocks: deliveries run in the background and the caller flushes them at the end.
	Notify *notify.Notifier
	// Source, when set, is where tracking reads its input (the guard's caches) instead of its own watches.
	Source track.Source
}

func (w Watch) event(msg string) {
	if w.OnEvent != nil {
		w.OnEvent(msg)
	}
}

func (w Watch) logger() *slog.Logger {
	if w.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return w.Log
}

// track follows targets with the shared options and converts statuses into report lines.
// Signals from before started are ignored (zero: none are); the timeout counts from since.
func (w Watch) track(ctx context.Context, c *kube.Client, targets []track.Target, started, since time.Time) ([]report.Workload, error) {
	return w.trackAt(ctx, c, targets, started, since, "")
}

// trackAt is track with a crash point hit at the first verdict update (mid-tracking).
func (w Watch) trackAt(ctx context.Context, c *kube.Client, targets []track.Target, started, since time.Time, point string) ([]report.Workload, error) {
	return w.trackUntil(ctx, c, targets, started, since, point, nil)
}

// trackUntil is trackAt while the targets' changes are still going in: applied says which are (nil: all).
func (w Watch) trackUntil(ctx context.Context, c *kube.Client, targets []track.Target, started, since time.Time, point string, applied func(track.Target) (int64, bool)) ([]report.Workload, error) {
	opts := track.Options{Thresholds: w.Thresholds, Started: started, Log: w.logger(), KnownStartup: w.KnownStartup, Applied: applied, Source: w.Source}
	if w.Timeout > 0 {
		opts.Deadline = since.Add(w.Timeout)
	}
	opts.OnUpdate = func(st []track.Status) {
		if point != "" {
			crashpoint.Hit(point)
		}
		if w.OnUpdate != nil {
			w.OnUpdate(workloads(st))
		}
	}
	st, err := track.Track(ctx, c, targets, opts)
	return workloads(st), err
}

func workloads(st []track.Status) []report.Workload {
	out := make([]report.Workload, len(st))
	for i, s := range st {
		out[i] = report.FromVerdict(s.Kind, s.Namespace, s.Name, s.Verdict, s.DetectedAt)
		out[i].Revision, out[i].TemplateHash = s.Revision.Number, s.Revision.Hash
	}
	return out
}

// outcomeOf is Succeeded when every workload is healthy, Failed otherwise.
func outcomeOf(ws []report.Workload) report.Outcome {
	for _, w := range ws {
		if w.Status != diagnose.Healthy {
			return report.Failed
		}
	}
	return report.Succeeded
}

// summary is the one-line message of a run: the first failure, or how many workloads became healthy.
func summary(ws []report.Workload) string {
	for _, w := range ws {
		if w.Status == diagnose.Failed {
			return w.ID() + " failed: " + string(w.Reason) + ": " + w.Message
		}
	}
	n := 0
	for _, w := range ws {
		if w.Status == diagnose.Healthy {
			n++
		}
	}
	if n == len(ws) {
		return plural(n, "workload") + " healthy"
	}
	return plural(n, "workload") + " healthy, " + plural(len(ws)-n, "not finished")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
