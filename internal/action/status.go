package action

import (
	"context"
	"time"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/track"
)

// Status follows a rollout started by anything else (kubectl, Argo CD, a helm upgrade): a drop-in for
// `kubectl rollout status` that fails as soon as the failure is visible.
type Status struct {
	Connect Connector
	Watch
	// Object is TYPE/NAME as kubectl takes it: deployment/web, deploy/web, sts/db, ds/agent.
	Object    string
	Namespace string
}

// Run tracks the object until it is healthy, fails or the timeout passes.
func (s *Status) Run(ctx context.Context) (*report.Result, error) {
	if s.Timeout < 0 {
		return nil, exitcode.BadInputf("--timeout must be positive, got %s", s.Timeout)
	}
	c, err := s.Connect(ctx)
	if err != nil {
		return nil, err
	}
	w, err := resolveWorkload(ctx, c, s.Object, s.Namespace)
	if err != nil {
		return nil, err
	}
	ns := w.target.Namespace
	start := time.Now()
	result := &report.Result{Command: "status", Namespace: ns}
	ws, err := s.track(ctx, c, []track.Target{w.target}, time.Time{}, start)
	result.FinishedAt = time.Now()
	result.Workloads = ws
	if err != nil {
		return result, err
	}
	result.Outcome = outcomeOf(ws)
	result.Message = summary(ws)
	return result, nil
}
