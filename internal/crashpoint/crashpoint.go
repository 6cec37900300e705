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

// Points are every named point, in the order a deploy with rollback passes them.
var Points = []string{
	"deploy:locked",      // lock held, nothing recorded
	"deploy:recorded",    // release recorded, nothing applied
	"deploy:applying",    // first object applied
	"deploy:applied",     // every object applied, record still says applying
	"deploy:tracking",    // record says tracking
	"deploy:failed",      // verdict failed, on-failure policy not started
	"approval:waiting",   // record says pending approval
	"rollback:started",   // record says rolling back, nothing restored
	"rollback:restoring", // first object restored
	"rollback:restored",  // every object restored, not yet verified
	"rollback:verified",  // restored workloads healthy, record not yet final
}

// Hit dies here if this is the named point.
func Hit(point string) {
	if os.Getenv(Env) == point {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is asynchronous; never run past the point
	}
}
