package action

import "github.com/rollguard/rollguard/internal/exitcode"

// OnFailure is what a deploy does when its release fails.
type OnFailure string

// On-failure policies of a deploy.
const (
	OnFailureRollback OnFailure = "rollback"
	OnFailureApprove  OnFailure = "approve"
	OnFailureHold     OnFailure = "hold"
	OnFailureNone     OnFailure = "none"
)

// ParseOnFailure validates an on-failure policy once, where the flag or config is read; empty is rollback.
func ParseOnFailure(s string) (OnFailure, error) {
	switch p := OnFailure(s); p {
	case "":
		return OnFailureRollback, nil
	case OnFailureRollback, OnFailureApprove, OnFailureHold, OnFailureNone:
		return p, nil
	}
	return "", exitcode.BadInputf("--on-failure must be rollback, approve, hold or none, got %q", s)
}

// TimeoutAction is what happens to a held rollback nobody decides on in time.
type TimeoutAction string

// Approval timeout actions.
const (
	TimeoutRollback TimeoutAction = "rollback"
	TimeoutReject   TimeoutAction = "reject"
)

// ParseTimeoutAction validates an approval timeout action; empty is rollback.
func ParseTimeoutAction(s string) (TimeoutAction, error) {
	switch a := TimeoutAction(s); a {
	case "":
		return TimeoutRollback, nil
	case TimeoutRollback, TimeoutReject:
		return a, nil
	}
	return "", exitcode.BadInputf("--approval-timeout-action must be rollback or reject, got %q", s)
}
