package action

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/track"
)

// liveTracking follows a release's workloads while its objects are still being applied or restored: a
// workload is judged from the moment its own change is in (mark), so a broken one among a thousand is
// reported seconds after its pods show it, not after the last object went in.
type liveTracking struct {
	cancel context.CancelFunc
	done   chan struct{}
	ws     []report.Workload
	err    error

	mu      sync.Mutex
	applied map[track.Target]int64 // the generation the write gave each applied target
}

// startTracking starts following targets in the background with the watch options; see Watch.trackAt for
// started, since and point.
func startTracking(ctx context.Context, w Watch, c *kube.Client, targets []track.Target, started, since time.Time, point string) *liveTracking {
	ctx, cancel := context.WithCancel(ctx)
	t := &liveTracking{cancel: cancel, done: make(chan struct{}), applied: map[track.Target]int64{}}
	go func() {
		defer close(t.done)
		t.ws, t.err = w.trackUntil(ctx, c, targets, started, since, point, t.isApplied)
	}()
	return t
}

// mark says a target's change is applied, as the object the write returned (nil: unknown): it is judged
// once the caches hold that generation.
func (t *liveTracking) mark(target track.Target, written *unstructured.Unstructured) {
	var generation int64
	if written != nil {
		generation = written.GetGeneration()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.applied[target] = generation
}

func (t *liveTracking) isApplied(target track.Target) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	generation, ok := t.applied[target]
	return generation, ok
}

// wait returns the verdicts once tracking has ended.
func (t *liveTracking) wait() ([]report.Workload, error) {
	<-t.done
	t.cancel()
	return t.ws, t.err
}

// stop ends tracking (the apply failed or the run was stopped) and waits for it to end.
func (t *liveTracking) stop() {
	t.cancel()
	<-t.done
}
