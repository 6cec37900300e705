// Package diagnose decides, from Kubernetes objects alone, whether a workload's rollout is healthy, still
// progressing, or failed, and why. It is pure: objects in, verdict out. No clients, no clocks (the caller
// passes Now), so every rule is tested table-driven on objects captured from the sandbox cluster.
package diagnose

import (
	"fmt"
	"strings"
	"time"
)

// Status is a workload's rollout state.
type Status string

const (
	Healthy     Status = "healthy"
	Progressing Status = "progressing"
	Failed      Status = "failed"
)

// Reason identifies why a rollout failed. The string values are part of rollguard's JSON output.
type Reason string

const (
	ImagePullFailed          Reason = "ImagePullFailed"
	CrashLoop                Reason = "CrashLoop"
	ConfigError              Reason = "ConfigError"
	ReadinessFailed          Reason = "ReadinessFailed"
	QuotaExceeded            Reason = "QuotaExceeded"
	LimitRangeViolation      Reason = "LimitRangeViolation"
	PermissionDenied         Reason = "PermissionDenied"
	AdmissionDenied          Reason = "AdmissionDenied"
	PodRejected              Reason = "PodRejected"
	Unschedulable            Reason = "Unschedulable"
	ProgressDeadlineExceeded Reason = "ProgressDeadlineExceeded"
	JobFailed                Reason = "JobFailed"
	// VerificationFailed: a verify Job of the release (smoke tests, deep health checks run once every
	// workload is healthy) failed; see job.go.
	VerificationFailed   Reason = "VerificationFailed"
	CustomResourceFailed Reason = "CustomResourceFailed"
	Timeout              Reason = "Timeout"
)

// Evidence is one fact behind a verdict: an event line, a container state, a condition, a log tail.
type Evidence struct {
	// Object is kind/name of the object the fact comes from, e.g. "Pod/web-7d9f-abcde".
	Object string `json:"object"`
	// Text is the fact as a user would read it, e.g. `Warning Failed: Back-off pulling image "web:v2"`.
	Text string `json:"text"`
}

// Verdict is the diagnosis of one workload at one moment.
type Verdict struct {
	// Workload is kind/name of the diagnosed workload, e.g. "Deployment/web".
	Workload string `json:"workload,omitempty"`
	Status   Status `json:"status"`
	Reason   Reason `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
	// Progress is a short human line such as "2/3 updated, 1 ready".
	Progress string     `json:"progress,omitempty"`
	Evidence []Evidence `json:"evidence,omitempty"`
	Fix      string     `json:"fix,omitempty"`
	// Since is when the deciding signal first appeared (for a failure); the tracker reports detection time itself.
	Since time.Time `json:"-"`
	// Startup is, for a healthy rollout, how long its pods took from start to Ready (startup.go); release
	// records keep it so the next release's readiness wait knows it even when the old pods are gone.
	Startup time.Duration `json:"-"`
	// Unconfirmed is, for a Progressing verdict, the reason a rule suspects but has not confirmed: a signal
	// still inside its grace window or budget. Every rule that fails a rollout as time passes is such a
	// finding first, so a caller that judges again when the objects change need re-judge on time alone
	// only the verdicts that carry one (and any at the deadline).
	Unconfirmed Reason `json:"-"`
	// Due is, for a Progressing verdict, the earliest time a wait of its findings confirms a failure if
	// nothing changes (zero: none does by time alone), so a caller can judge again exactly then; always
	// after Input.Now.
	Due time.Time `json:"-"`
	// Anchors names the states its pending waits count from; a caller that judges again passes back when
	// it first saw each (Input.Seen).
	Anchors []string `json:"-"`
}

// Line renders the verdict on one line for logs, e.g.
// `failed Deployment/web ImagePullFailed: pod web-1: container web cannot pull image "web:v2": ... [1/3 updated, 0 ready]`.
func (v Verdict) Line() string {
	var b strings.Builder
	b.WriteString(string(v.Status))
	if v.Workload != "" {
		b.WriteString(" " + v.Workload)
	}
	if v.Reason != "" {
		b.WriteString(" " + string(v.Reason))
	}
	if v.Message != "" {
		b.WriteString(": " + strings.Join(strings.Fields(v.Message), " "))
	}
	if v.Progress != "" {
		fmt.Fprintf(&b, " [%s]", v.Progress)
	}
	return b.String()
}
