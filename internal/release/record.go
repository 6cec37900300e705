// Package release holds rollguard's release record and the store that keeps it in the cluster.
//
// A release record is written before anything changes and updated as the release proceeds, so that a run
// killed half-way can be found and undone by the next one, and so `rollguard history` can say who deployed
// what, when, and how it ended. It is kept as a labelled Secret per release in the release's namespace (the
// way helm keeps releases) because it holds the previous state of every object the release changed,
// Secrets included, which is what a rollback restores.
//
// Nothing in this package prints a record: callers that show releases (history, reports) must show names,
// kinds and statuses only, never ObjectState.Previous.
package release

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/manifest"
)

// Outcome is where a release stands. The string values are stored in records and labels and appear in
// `rollguard history -o json`.
type Outcome string

const (
	// Applying: the record is written and objects are being applied.
	Applying Outcome = "applying"
	// Tracking: everything is applied; the rollout is being watched.
	Tracking Outcome = "tracking"
	// Succeeded: every workload became healthy.
	Succeeded Outcome = "succeeded"
	// Failed: the release failed and was not rolled back (rollback disabled, or nothing to roll back to).
	Failed Outcome = "failed"
	// RollingBack: the release failed and its previous state is being restored.
	RollingBack Outcome = "rolling_back"
	// RolledBack: the release failed and the rollback was proven healthy.
	RolledBack Outcome = "rolled_back"
	// RollbackFailed: the release failed and the rollback did not become healthy either.
	RollbackFailed Outcome = "rollback_failed"
	// PendingApproval: the release failed and its rollback waits for an approval.
	PendingApproval Outcome = "pending_approval"
	// Rejected: the rollback was declined (or the approval timed out); the failed release stays.
	Rejected Outcome = "rejected"
	// Interrupted: the run was stopped (SIGINT/SIGTERM) after it changed the cluster and before it verified
	// the release; Message says where. The next deploy of the app keeps its recorded previous state.
	Interrupted Outcome = "interrupted"
	// Superseded: the run lost the app's lock (`rollguard unlock`, or an expiry) and stopped; a later run
	// owns the app. The release was never verified and is not what runs.
	Superseded Outcome = "superseded"
)

// Unfinished reports whether a run in this state is still under way — or was killed before it ended,
// when no process holds the release's lock.
func (o Outcome) Unfinished() bool {
	return o == Applying || o == Tracking || o == RollingBack
}

// InEffect reports whether a release's changes may still be in the cluster: every state but a completed
// rollback.
func (o Outcome) InEffect() bool {
	return o != RolledBack && o != Superseded
}

// RestorePoint is what a rollback of the next release of the app returns to when r is the app's newest
// record: r itself when it ended healthy, else what r's own rollback returns to (a failed, rolled back,
// held or interrupted release hands its recorded previous state on; see Deploy's converge).
func RestorePoint(r *Record) string {
	switch {
	case r == nil:
		return ""
	case r.Outcome == Succeeded:
		return r.ID
	default:
		return r.RestoresTo
	}
}

// Text is the outcome as a person reads it ("rolled back").
func (o Outcome) Text() string {
	if o == "" {
		return "unknown"
	}
	return strings.ReplaceAll(string(o), "_", " ")
}

// Record is one release: what was deployed, by whom, what it changed (with the previous state needed to
// undo it), and how it ended.
type Record struct {
	// ID is "<app>.v<N>"; assigned by Store.Create.
	ID  string `json:"id"`
	App string `json:"app"`
	// Namespace is where the record is stored (the release's default namespace).
	Namespace   string `json:"namespace"`
	Environment string `json:"environment,omitempty"`
	// Revision is N: increasing per app and namespace, assigned by Store.Create.
	Revision  int       `json:"revision"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// DeployedBy is the cluster identity that ran the release and, in CI, who triggered the run: see
	// Identity.
	DeployedBy  string      `json:"deployedBy,omitempty"`
	CI          manifest.CI `json:"ci"`
	ChangeCause string      `json:"changeCause,omitempty"`
	// Objects are every object the release creates or changes, with their previous state.
	Objects []ObjectState `json:"objects,omitempty"`
	Outcome Outcome       `json:"outcome"`
	// Reason identifies why the release failed (a diagnose.Reason such as ImagePullFailed); Message says it.
	Reason  string  `json:"reason,omitempty"`
	Message string  `json:"message,omitempty"`
	Timings Timings `json:"timings"`
	// RollbackOf is set on a record that describes a rollback or undo: the ID of the release it undid.
	RollbackOf string `json:"rollbackOf,omitempty"`
	// RestoresTo is the release whose state a rollback of this release returns to (the one its recorded
	// previous state belongs to), or, on an undo's record, the release whose revision the undo went back
	// to; "" when that state was not made by a rollguard release. Written once, when the record is made,
	// so history never has to guess it.
	RestoresTo string `json:"restoresTo,omitempty"`
	// Undo marks the record of a `rollguard undo` (RollbackOf names the release it undid, when it undid one).
	Undo bool `json:"undo,omitempty"`
	// Skipped lists the newer releases a `rollback --skip-newer` of this release undid along with it.
	Skipped  []string  `json:"skipped,omitempty"`
	Approval *Approval `json:"approval,omitempty"`
	// Workloads are the release's Deployments, StatefulSets, DaemonSets and Jobs.
	Workloads []WorkloadState `json:"workloads,omitempty"`
	// Phases are the release's steps beyond apply and track (pre-deploy Jobs, verify Jobs, the bake window),
	// in the order they ran, and how each ended.
	Phases []Phase `json:"phases,omitempty"`
	// Irreversible is set once a pre-deploy Job marked rollguard.dev/reversible: "false" succeeded: from then
	// on the old code may not work on what the Job changed, so a failure is held instead of rolled back.
	Irreversible *Irreversible `json:"irreversible,omitempty"`
	// ObservedBy is set on a rollout rollguard did not start but watched ("rollguard guard"): somebody else
	// (DeployedBy, a field manager such as kubectl-set or argocd-controller) changed the workload, and the
	// guard followed, judged and, on failure, rolled it back or held it.
	ObservedBy string `json:"observedBy,omitempty"`

	// stored is the Secret's resourceVersion when the record was last read or written, and base the record
	// as it was then: Update re-applies the caller's changes (against base) on a conflict.
	stored string
	base   []byte
	// parts is the stored version's parts annotation (AnnotationParts), "" when it fits one Secret.
	parts string
}

// Timings are the moments of a release; zero when the step has not happened.
type Timings struct {
	AppliedAt          time.Time `json:"appliedAt,omitzero"`
	FinishedAt         time.Time `json:"finishedAt,omitzero"`
	RollbackStartedAt  time.Time `json:"rollbackStartedAt,omitzero"`
	RollbackFinishedAt time.Time `json:"rollbackFinishedAt,omitzero"`
}

// Phase is one release phase as the record keeps it.
type Phase struct {
	// Name is "pre-deploy", "verify" or "bake".
	Name string `json:"name"`
	// Outcome is "succeeded", "failed" or "interrupted".
	Outcome    string    `json:"outcome"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	Message    string    `json:"message,omitempty"`
}

// Irreversible names the irreversible step a release took.
type Irreversible struct {
	// Job is "Job/name" of the pre-deploy Job marked rollguard.dev/reversible: "false".
	Job string `json:"job"`
	// At is when the Job completed.
	At time.Time `json:"at"`
}

// Approval decisions.
const (
	Approved = "approved"
	Declined = "rejected"
	TimedOut = "timeout"
)

// Approval is a rollback held for a person to decide.
type Approval struct {
	RequestedAt time.Time `json:"requestedAt"`
	// Decision is "" while pending, then Approved, Declined or TimedOut.
	Decision string    `json:"decision,omitempty"`
	By       string    `json:"by,omitempty"`
	At       time.Time `json:"at,omitzero"`
}

// ObjectState is one object the release creates or changes.
type ObjectState struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	// Existed is false when the release created the object (a rollback deletes it).
	Existed bool `json:"existed"`
	// Previous is the live object before the change, cleaned by Capture; nil when !Existed. It may hold
	// Secret data: never print it.
	Previous *unstructured.Unstructured `json:"previous,omitempty"`
}

// Ref is Kind/namespace/name, the way errors and history name an object.
func (o ObjectState) Ref() string {
	if o.Namespace != "" {
		return o.Kind + "/" + o.Namespace + "/" + o.Name
	}
	return o.Kind + "/" + o.Name
}

// WorkloadState is one workload of the release.
type WorkloadState struct {
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name"`
	Images    []string `json:"images,omitempty"`
	// PreviousRevision is the deployment.kubernetes.io/revision (Deployments) or the ControllerRevision
	// number (StatefulSets, DaemonSets) before the release; 0 when the workload is new.
	PreviousRevision int64 `json:"previousRevision,omitempty"`
	// PreviousTemplateHash is the pod-template-hash (Deployments), the ControllerRevision name
	// (StatefulSets: status.currentRevision) or the controller-revision-hash (DaemonSets) before the release.
	PreviousTemplateHash string `json:"previousTemplateHash,omitempty"`
	// NewRevision is the revision the release rolled out, and NewTemplateHash its pod-template-hash or
	// controller-revision-hash: history matches records to ReplicaSets by them.
	NewRevision     int64  `json:"newRevision,omitempty"`
	NewTemplateHash string `json:"newTemplateHash,omitempty"`
	// StartupSeconds is how long the released revision's pods took from start to Ready, once healthy: the
	// next release's readiness wait learns from it when the old pods are gone (diagnose/startup.go).
	StartupSeconds float64         `json:"startupSeconds,omitempty"`
	Status         diagnose.Status `json:"status,omitempty"`
	Reason         diagnose.Reason `json:"reason,omitempty"`
	// Message, Evidence (the first few facts) and Fix explain a failed workload, for the timeline in the
	// dashboard; they are what a report prints, never object bodies.
	Message  string              `json:"message,omitempty"`
	Evidence []diagnose.Evidence `json:"evidence,omitempty"`
	Fix      string              `json:"fix,omitempty"`
}
