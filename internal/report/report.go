// Package report holds what a rollguard run found and encodes it for people and machines: a terminal
// summary (Human), `-o json` (JSON), a JUnit file for Azure DevOps and GitLab (JUnit), a GitHub step summary
// (Markdown), and live progress while the run is under way (Progress).
//
// A report never holds object bodies (manifests, Secrets, ConfigMaps, env values): only names, statuses and
// the diagnosis' evidence lines, so every encoding is safe to print in a CI log or attach to a pipeline.
package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/oneline"
)

// Outcome is how a whole run ended. The string values are part of rollguard's JSON output.
type Outcome string

const (
	// Succeeded: every workload became healthy.
	Succeeded Outcome = "succeeded"
	// Failed: the release failed and nothing was rolled back (rollback disabled or declined).
	Failed Outcome = "failed"
	// RolledBack: the release failed and the rollback was proven healthy.
	RolledBack Outcome = "rolled_back"
	// RollbackFailed: the release failed and the rollback did not become healthy either.
	RollbackFailed Outcome = "rollback_failed"
	// PendingApproval: the release failed and the rollback waits for an approval given by a later step.
	PendingApproval Outcome = "pending_approval"
	// Interrupted: the run was stopped by a signal before it knew the outcome; Message says where and what
	// to run next.
	Interrupted Outcome = "interrupted"
	// Superseded: the run lost the app's lock to another run and stopped changing anything.
	Superseded Outcome = "superseded"
	// Error: the run stopped on an error (bad input, an unreachable cluster) before it had an outcome;
	// Message is the error. Written so that a CI parser always gets a result.
	Error Outcome = "error"
)

// text is the outcome as a person reads it ("rolled back").
func (o Outcome) text() string {
	if o == "" {
		return "unknown"
	}
	return strings.ReplaceAll(string(o), "_", " ")
}

// Result is everything one rollguard run (deploy, status, undo, ...) reports.
type Result struct {
	// Release is the release id; empty when the run has none (e.g. status of an unmanaged workload).
	Release string
	// Command is the rollguard command that produced the result: "deploy", "status", "undo", ...
	Command string
	Outcome Outcome
	// AppliedAt is when the release's objects were applied; zero when nothing was applied in this run and the
	// applied time is unknown. Detection times are reported relative to it.
	AppliedAt time.Time
	// StartedAt is when the run started; the duration of a run that applied nothing counts from it.
	StartedAt  time.Time
	FinishedAt time.Time
	// Namespace is the run's default namespace; workloads in it are shown without a namespace prefix.
	Namespace   string
	ChangeCause string
	Workloads   []Workload
	// Phases are the release's steps beyond apply and track (pre-deploy, verify, bake), in the order they
	// ran; empty when the release has none.
	Phases []Phase
	// Rollback is nil unless a rollback was performed or is held for approval.
	Rollback *Rollback
	// Warnings are what the run found questionable without failing it (a workload without a
	// readinessProbe), one line each.
	Warnings []string
	// Message is a one-line summary, e.g. `Deployment/web failed: ImagePullFailed; rolled back to r-41`.
	Message string
	// ExitCode is the process exit code the run ends with (see README).
	ExitCode int
}

// Duration is the time from apply (or, for a run that applied nothing, such as status or approve, from the
// run's start) to the end of the run; zero when either end is unknown.
func (r Result) Duration() time.Duration {
	return between(firstNonZero(r.AppliedAt, r.StartedAt), r.FinishedAt)
}

// Workload is one workload's state at the end of a run (or at the latest update, for live progress).
type Workload struct {
	Kind      string
	Namespace string
	Name      string
	Status    diagnose.Status
	// Reason is set for a failed workload (and for one still progressing when the run timed out).
	Reason  diagnose.Reason
	Message string
	// DetectedAt is when rollguard reached the verdict: when a failure (or a timeout) was detected or when
	// the workload was seen healthy. It is zero while the workload is still progressing without a verdict.
	// Reporting it for healthy workloads too lets a pipeline see how long each workload took to be ready.
	DetectedAt time.Time
	// Progress is a short line such as "2/3 updated, 1 ready".
	Progress string
	Evidence []diagnose.Evidence
	Fix      string
	// Images are the workload's container images (references, never pull secrets).
	Images []string
	// Startup is how long a healthy workload's pods took from start to Ready (not printed; release records
	// keep it for the next release's readiness wait).
	Startup time.Duration
	// Phase is the release phase a Job ran in ("pre-deploy", "verify"); empty for the rollout itself.
	Phase string
	// Revision and TemplateHash are, when tracking saw them with the verdict, the revision the workload
	// ran then (not printed; the release record's NewRevision and NewTemplateHash).
	Revision     int64
	TemplateHash string
}

// FromVerdict makes the report line for one workload from its diagnosis, detected at the given time.
// DetectedAt is left zero while the verdict is Progressing without a reason (no verdict yet).
func FromVerdict(kind, namespace, name string, v diagnose.Verdict, detectedAt time.Time) Workload {
	w := Workload{
		Kind:      kind,
		Namespace: namespace,
		Name:      name,
		Status:    v.Status,
		Reason:    v.Reason,
		Message:   v.Message,
		Progress:  v.Progress,
		Evidence:  v.Evidence,
		Fix:       v.Fix,
		Startup:   v.Startup,
	}
	if !unfinished(w) {
		w.DetectedAt = detectedAt
	}
	return w
}

// ID is "Kind/name", the way kubectl names an object.
func (w Workload) ID() string {
	return w.Kind + "/" + w.Name
}

// Rollback is what rollguard did after a failed release.
type Rollback struct {
	// ToRelease is the release rolled back to; empty when the previous state was not a rollguard release.
	ToRelease string
	// Outcome is Succeeded or Failed for a performed rollback, PendingApproval for one held for approval.
	Outcome    Outcome
	StartedAt  time.Time
	FinishedAt time.Time
	// Workloads are the workloads' states after the rollback.
	Workloads []Workload
	Message   string
}

// between is b-a, or zero when either is unknown or b is before a.
func between(a, b time.Time) time.Duration {
	if a.IsZero() || b.IsZero() || b.Before(a) {
		return 0
	}
	return b.Sub(a)
}

// human formats a duration the way a person reads it in a log: "2.1s", "1m4.5s", "850ms".
func human(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(100 * time.Millisecond).String()
	}
}

// seconds is d in seconds with millisecond precision, as JUnit and JSON want it.
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.3f", d.Seconds())
}

// failureReason is the reason to report for a workload that did not end healthy: its own, or "Failed" for
// a failure without one. A workload still progressing without a reason has none: the run ended before it
// reached a verdict (another workload failed first).
func failureReason(w Workload) diagnose.Reason {
	if w.Reason == "" && w.Status == diagnose.Failed {
		return "Failed"
	}
	return w.Reason
}

// unfinished reports a workload the run stopped watching before it reached a verdict.
func unfinished(w Workload) bool {
	return w.Status == diagnose.Progressing && w.Reason == ""
}

// detail is the one-line explanation of a workload's state: the failure message, else its progress.
func detail(w Workload) string {
	if w.Message != "" {
		return w.Message
	}
	return w.Progress
}

func firstNonZero(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// evidenceLine is one fact as "Object: text".
func evidenceLine(e diagnose.Evidence) string {
	if e.Object == "" {
		return e.Text
	}
	return e.Object + ": " + e.Text
}

// rollbackHeadline is e.g. "rollback to release r-41: succeeded in 8.2s".
func rollbackHeadline(rb *Rollback) string {
	s := "rollback to the previous revision"
	if rb.ToRelease != "" {
		s = "rollback to release " + rb.ToRelease
	}
	s += ": " + rb.Outcome.text()
	if d := between(rb.StartedAt, rb.FinishedAt); d > 0 {
		s += " in " + human(d)
	}
	if rb.Message != "" {
		s += " — " + oneline.Fold(rb.Message)
	}
	return s
}

// paren is "(s)", or "" when s is empty.
func paren(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}
