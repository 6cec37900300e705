package action

import (
	"context"
)

// The checks before the first change are independent round trips: the server-side dry-run of every object
// (validate), the pod preflight and the permission preflight. One after another they were most of what a
// small release spent before its first change (a few hundred milliseconds each of mostly waiting on the
// API server), so validate and pod-preflight start theirs in the background and preflight, the last check,
// settles them all. Errors keep phase order: the first bad object reported is the one it was when the
// checks ran one after another, and nothing changes before every check has passed.

// inBackground starts a check that later phases do not wait for; settle collects its result.
func (s *State) inBackground(ctx context.Context, check func(context.Context) error) {
	done := make(chan error, 1)
	go func() { done <- check(ctx) }()
	s.pending = append(s.pending, done)
}

// settle waits for the checks started in the background and returns the first of their errors, in the
// order they were started, else err: a check begun in an earlier phase outranks a later phase's failure.
func (s *State) settle(err error) error {
	pending := s.pending
	s.pending = nil
	for _, done := range pending {
		if e := <-done; e != nil {
			return e
		}
	}
	return err
}
