// Package notify tells people about releases where they are: a Slack incoming webhook, a Microsoft Teams
// workflow webhook (an Adaptive Card), or any HTTP endpoint that takes rollguard's own JSON (Event, whose
// schema is versioned by Schema and documented in docs/notifications.md).
//
// Sending never stands in a release's way: Notify returns at once, deliveries run in the background with
// retries and backoff, and Flush waits for them only up to a bound. A webhook URL is a secret (it is the
// only credential a Slack or Teams webhook has), so no error, log line or message ever contains one:
// targets are named by their format and position ("slack webhook #1").
package notify

import (
	"time"
)

// Schema is the version of the generic JSON payload. A change that removes or renames a field, or
// changes a field's meaning, makes a new version; new optional fields do not.
const Schema = "rollguard.dev/notification/v1"

// Kind is what happened. The values are part of the JSON schema.
type Kind string

const (
	// ReleaseFailed: a release's rollout failed (reason, message, evidence). Sent when the failure is
	// detected, before any rollback.
	ReleaseFailed Kind = "release_failed"
	// RolledBack: the failed release was rolled back; Rollback.Healthy says whether the restored
	// workloads became healthy.
	RolledBack Kind = "rolled_back"
	// RollbackFailed: the rollback was carried out but the restored workloads did not become healthy.
	RollbackFailed Kind = "rollback_failed"
	// ApprovalNeeded: the rollback of a failed release waits for a decision (the commands and the
	// dashboard link are in Approval).
	ApprovalNeeded Kind = "approval_needed"
	// GuardHold: the in-cluster guard detected a failing rollout and holds it for a decision.
	GuardHold Kind = "guard_hold"
)

// Title is the one-line headline people see first.
func (k Kind) Title() string {
	switch k {
	case ReleaseFailed:
		return "Release failed"
	case RolledBack:
		return "Release rolled back"
	case RollbackFailed:
		return "Rollback failed"
	case ApprovalNeeded:
		return "Rollback waits for approval"
	case GuardHold:
		return "Guard holds a failing rollout"
	}
	return string(k)
}

// Event is one notification: the generic JSON payload as sent, and what the Slack and Teams formats are
// made from. It never holds object bodies, Secret values or webhook URLs.
type Event struct {
	// Schema is set by the sender to the package's Schema.
	Schema string `json:"schema"`
	Kind   Kind   `json:"event"`
	// ID identifies the event (release and kind), so a receiver can drop a retried delivery it already has.
	ID          string    `json:"id"`
	At          time.Time `json:"at"`
	App         string    `json:"app"`
	Environment string    `json:"environment,omitempty"`
	// Cluster is the API server the release ran against.
	Cluster   string `json:"cluster,omitempty"`
	Namespace string `json:"namespace"`
	Release   string `json:"release"`
	// Reason is the failure's reason (ImagePullFailed, CrashLoop, ...) and Message says it in a sentence.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Workload is the first failed workload, Kind/name.
	Workload string `json:"workload,omitempty"`
	// Evidence is a short summary of what the diagnosis saw (at most a few lines).
	Evidence []string `json:"evidence,omitempty"`
	Fix      string   `json:"fix,omitempty"`
	// DeployedBy is who ran the release; ChangeCause what it was for.
	DeployedBy  string    `json:"deployedBy,omitempty"`
	ChangeCause string    `json:"changeCause,omitempty"`
	Rollback    *Rollback `json:"rollback,omitempty"`
	Approval    *Approval `json:"approval,omitempty"`
}

// Rollback is the rollback a failure caused.
type Rollback struct {
	// ToRelease is the release it returned to; empty when that state was not a rollguard release.
	ToRelease string `json:"toRelease,omitempty"`
	Healthy   bool   `json:"healthy"`
	Message   string `json:"message,omitempty"`
	// By is who approved it, when it was approved.
	By string `json:"by,omitempty"`
}

// Approval is how to decide on a held rollback.
type Approval struct {
	ApproveCommand string `json:"approveCommand"`
	RejectCommand  string `json:"rejectCommand"`
	// Dashboard is the release's page in `rollguard dashboard`; empty when unknown.
	Dashboard string `json:"dashboard,omitempty"`
	// Deadline is when the waiting run gives up (and does its approval-timeout action); zero when no run
	// waits (a held release).
	Deadline time.Time `json:"deadline,omitzero"`
}

// Commands returns the approve and reject commands for a release.
func Commands(id, namespace string) (approve, reject string) {
	return "rollguard approve " + id + " -n " + namespace, "rollguard reject " + id + " -n " + namespace
}

// maxEvidence bounds the evidence lines a notification carries: a chat message is a summary, the full
// evidence is in the report and the dashboard.
const maxEvidence = 5

// Summarize keeps the first few evidence lines, each cut to a readable length.
func Summarize(lines []string) []string {
	var out []string
	for _, l := range lines {
		if len(out) == maxEvidence {
			break
		}
		if len(l) > 300 {
			l = l[:297] + "..."
		}
		out = append(out, l)
	}
	return out
}
