// Package exitcode holds rollguard's process exit codes and the error type that carries one.
// Pipelines branch on these numbers, so they are part of the CLI contract (see README).
package exitcode

import (
	"errors"
	"fmt"
)

const (
	// OK: the release is healthy (or the command did what it was asked).
	OK = 0
	// RolledBack: the release failed and was rolled back to a healthy state.
	RolledBack = 1
	// NotRecovered: the release failed and is not recovered (rollback failed, declined or disabled).
	NotRecovered = 2
	// BadInput: bad input or a preflight check refused; nothing was changed.
	BadInput = 3
	// Unreachable: the cluster could not be reached or did not accept our credentials.
	Unreachable = 4
	// PendingApproval: the release failed and its rollback waits for an approval given by a later step.
	PendingApproval = 5
)

// Error is an error that decides the process exit code.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// New wraps err with an exit code; a nil err stays nil.
func New(code int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// BadInputf is a bad-input error (exit 3): the message should name the problem and the fix.
func BadInputf(format string, a ...any) error {
	return &Error{Code: BadInput, Err: fmt.Errorf(format, a...)}
}

// Unreachablef is a connectivity or authentication error (exit 4).
func Unreachablef(format string, a ...any) error {
	return &Error{Code: Unreachable, Err: fmt.Errorf(format, a...)}
}

// Of returns the exit code an error asks for: its own code when it carries one, NotRecovered otherwise,
// since an unclassified failure must never look like success or a clean rollback to a pipeline.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return NotRecovered
}
