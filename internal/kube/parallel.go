package kube

import (
	"context"
	"errors"

	"golang.org/x/sync/errgroup"
)

// DefaultConcurrency is how many requests for a release's objects (dry-runs, reads, applies, restores) are
// in flight at once when Client.Concurrency is 0. A handful hides the round trip of each request without
// flooding the API server: its priority and fairness queues, not our speed, should decide when it is busy.
const DefaultConcurrency = 16

// Workers is how many requests for a release's objects may be in flight at once.
func (c *Client) Workers() int {
	if c == nil || c.Concurrency <= 0 {
		return DefaultConcurrency
	}
	return c.Concurrency
}

// ForEach calls fn for 0..n-1 with at most c.Workers() calls at a time. The first failure stops calls not
// yet started (the context fn gets is cancelled); ForEach returns the failure of the lowest index, so the
// error a user sees is the same whichever request happened to fail first.
func (c *Client) ForEach(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	errs := make([]error, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.Workers())
	started := 0
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		started++
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				errs[i] = err // another failed while this one waited for its turn
				return err
			}
			errs[i] = fn(gctx, i)
			return errs[i]
		})
	}
	_ = g.Wait()
	if err := firstError(ctx, errs); err != nil || started == n {
		return err
	}
	return context.Cause(ctx)
}

// firstError is the failure of the lowest index that is not merely the cancellation the first failure
// caused in the others; a cancellation of the caller's own context is returned as it is.
func firstError(ctx context.Context, errs []error) error {
	var cancelled error
	for _, err := range errs {
		switch {
		case err == nil:
		case ctx.Err() == nil && errors.Is(err, context.Canceled):
			if cancelled == nil {
				cancelled = err
			}
		default:
			return err
		}
	}
	return cancelled
}
