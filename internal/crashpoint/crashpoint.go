// Package crashpoint kills rollguard with SIGKILL at a named point when ROLLGUARD_CRASHPOINT names it.
// Tests use it to prove that a run killed anywhere (no deferred cleanup, no signal handler) is converged
// by the next run; it costs one environment lookup per point otherwise.
package crashpoint

import (
	"os"
	"syscall"
)

// Env is the variable that names the point to die at.
const Env = "ROLLGUARD_CRASHPOINT"

// Points are the points a failing deploy passes on its own (on-failure rollback, or approve for the
// approval: points), in the order it passes them. Each Hit call names one. A point is worth having where
// a kill leaves a different state behind: something more changed, or the record says something new.
var Points = []string{
	"deploy:validated",          // dry-run and permission preflight passed; nothing locked or changed
	"deploy:locked",             // lock held, nothing recorded
	"deploy:recorded",           // release recorded, nothing applied
	"deploy:applying",           // first object (the ConfigMap or the Secret) applied
	"deploy:mid-group",          // one object of a group applied at once (ConfigMap, Secret), the other in flight
	"deploy:applied:Secret",     // the Secret holds the new value; the workload still runs the old one
	"deploy:applied:Service",    // an object the release creates exists
	"deploy:applied",            // every object applied, record still says applying
	"deploy:tracking",           // record says tracking
	"deploy:first-update",       // mid-tracking: the first verdict update
	"deploy:failed",             // verdict failed, on-failure policy not started
	"approval:waiting",          // record says pending approval
	"approval:watching",         // waiting: the record is watched, still without a decision
	"rollback:started",          // record says rolling back, nothing restored
	"rollback:restoring",        // first object (the workload) restored
	"rollback:restored:Service", // the Service the release created is deleted
	"rollback:restored:Secret",  // the Secret holds its previous value again
	"rollback:restored",         // every object restored, not yet verified
	"rollback:first-update",     // verifying the rollback: first verdict update
	"rollback:verified",         // restored workloads healthy, record not yet final
}

// DecisionPoints are passed only once a held rollback is decided: by `rollguard approve|reject`, or by
// the approval timeout. The decision is recorded; the run has not acted on it.
var DecisionPoints = []string{
	"approval:decided",   // approved or rejected by another process
	"approval:timed-out", // nobody decided in time; the timeout is recorded
}

// CommandPoints are in the later-step commands: `rollguard rollback RELEASE` and `rollguard undo`.
var CommandPoints = []string{
	"rollback:locked", // rollguard rollback: lock held, record not yet rolling back
	"undo:recorded",   // rollguard undo: undo recorded, workload not yet changed
}

// Line is what Hit writes on stderr just before the kill, so a test can tell its crash point fired from a
// kill by anything else (its own timeout, for one).
func Line(point string) string { return "rollguard: crash point " + point + " reached; killing myself" }

// PhasePoints are passed only by a release with pre-deploy and verify Jobs (rollguard.dev/phase), in order.
var PhasePoints = []string{
	"deploy:pre-deployed", // the pre-deploy Jobs completed; no workload changed, record still says applying
	"deploy:verifying",    // the rollout is healthy and the verify Jobs are created; record says tracking
	"deploy:baking",       // with --bake: the release is healthy and the bake window open; record says tracking
}

// GuardPoints are passed by `rollguard guard` (with the rollback: points, which its rollback shares).
var GuardPoints = []string{
	"guard:recorded", // a failing rollout is recorded (tracking) and the workload annotated; nothing decided
}

// Hit dies here if this is the named point.
func Hit(point string) {
	if os.Getenv(Env) == point {
		_, _ = os.Stderr.WriteString(Line(point) + "\n")
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is asynchronous; never run past the point
	}
}
