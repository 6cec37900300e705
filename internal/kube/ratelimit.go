package kube

import (
	"context"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// WithRateLimit returns a client of the same cluster whose typed and dynamic requests share one
// client-side token bucket of qps and burst. waited, when set, is told how long each request waited for a
// token: a long-running process (the guard) exports it, because client-side throttling is invisible in
// the API server's metrics and is the usual hidden cause of a slow controller.
func (c *Client) WithRateLimit(qps float32, burst int, waited func(time.Duration)) (*Client, error) {
	cfg := rest.CopyConfig(c.Config)
	cfg.QPS, cfg.Burst = qps, burst
	var rl flowcontrol.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(qps, burst)
	if waited != nil {
		rl = observedLimiter{RateLimiter: rl, waited: waited}
	}
	cfg.RateLimiter = rl
	typed, dyn, err := clientsFor(cfg)
	if err != nil {
		return nil, err
	}
	out := *c
	out.Config, out.Typed, out.Dynamic = cfg, typed, dyn
	return &out, nil
}

// clientsFor builds the typed and dynamic clients of a config.
func clientsFor(cfg *rest.Config) (kubernetes.Interface, dynamic.Interface, error) {
	// The built-in types travel as protobuf, as the cluster's own controllers do: while a large release
	// starts, the API server sends every pod and event change to rollguard's watches, and protobuf is the
	// encoding it has already made for its controllers (JSON would be one more encoding per change, on
	// the CPU the rollout itself needs) and the cheaper one to decode. Custom resources (dynamic) stay JSON.
	pcfg := rest.CopyConfig(cfg)
	pcfg.ContentType = "application/vnd.kubernetes.protobuf"
	pcfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	typed, err := kubernetes.NewForConfig(pcfg)
	if err != nil {
		return nil, nil, classifyConfigError(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, classifyConfigError(err)
	}
	return typed, dyn, nil
}

// observedLimiter reports each wait of the limiter it wraps.
type observedLimiter struct {
	flowcontrol.RateLimiter
	waited func(time.Duration)
}

func (l observedLimiter) Wait(ctx context.Context) error {
	start := time.Now()
	err := l.RateLimiter.Wait(ctx)
	l.waited(time.Since(start))
	return err
}
