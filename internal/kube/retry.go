package kube

import (
	"context"
	"time"
)

// Transient reports whether err is the API server not answering (a restart, a dropped connection): a
// request worth repeating once it is back. A cancelled request is not transient.
func Transient(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() == nil && isUnreachable(err)
}

// RetryTransient runs fn until it succeeds, fails for another reason, or the API server has not answered
// for max. A rollback must ride out an API server restart the way tracking does, not give up half-way.
func RetryTransient(ctx context.Context, max time.Duration, fn func() error) error {
	deadline := time.Now().Add(max)
	for {
		err := fn()
		if !Transient(ctx, err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}
