package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// ForEach keeps to its bound, and reports the failure of the lowest index whatever the order of failing.
func TestForEach(t *testing.T) {
	c := &Client{Concurrency: 3}
	var mu sync.Mutex
	inFlight, most := 0, 0
	release := make(chan struct{})
	started := make(chan struct{}, 100)
	go func() {
		// Let calls through only once the bound is reached, so the test sees it held.
		for range 3 {
			<-started
		}
		close(release)
	}()
	err := c.ForEach(context.Background(), 20, func(ctx context.Context, i int) error {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		started <- struct{}{}
		<-release
		mu.Lock()
		inFlight--
		mu.Unlock()
		return nil
	})
	if err != nil || most != 3 {
		t.Errorf("ForEach: err %v, %d calls at once, want nil and 3", err, most)
	}

	// Index 7 fails after index 12 did: 7 is reported, and calls not yet started are not made. 12 fails
	// only once 7 is running: a call that has not started when another fails is rightly never made.
	started7, failed12 := make(chan struct{}), make(chan struct{})
	calls := 0
	err = (&Client{Concurrency: 20}).ForEach(context.Background(), 100, func(ctx context.Context, i int) error {
		mu.Lock()
		calls++
		mu.Unlock()
		switch i {
		case 12:
			<-started7
			close(failed12)
			return errors.New("12 failed")
		case 7:
			close(started7)
			<-failed12
			return fmt.Errorf("7 failed")
		}
		<-ctx.Done() // the others wait to be cancelled
		return ctx.Err()
	})
	if err == nil || err.Error() != "7 failed" {
		t.Errorf("ForEach error %v, want 7's", err)
	}
	if calls > 20 {
		t.Errorf("%d calls after a failure with a bound of 20", calls)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.ForEach(ctx, 5, func(ctx context.Context, i int) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("ForEach on a cancelled context: %v, want context.Canceled", err)
	}
}
