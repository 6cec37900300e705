package guard

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/track"
)

// autoscalerTTL is how long a looked-up node autoscaler is trusted: it is installed or removed rarely,
// and a storm of rollouts must not look it up once each.
const autoscalerTTL = time.Minute

// source lets the tracker that proves a rollback healthy read the guard's caches (track.Source): the
// guard already watches every pod, ReplicaSet and event of the cluster once. One source serves one
// rollback.
type source struct {
	g *Guard

	mu sync.Mutex
	// generation is, per target, the workload's generation in the API when tracking began. The caches
	// may still hold the workload as it was before the rollback restored it; judged, that would fail the
	// rollback on the very rollout it undoes. Until they catch up the target is progressing.
	generation map[track.Target]int64
}

func newSource(g *Guard) *source { return &source{g: g, generation: map[track.Target]int64{}} }

func (s *source) Input(ctx context.Context, t track.Target) (diagnose.Input, error) {
	switch t.Kind {
	case "Deployment", "StatefulSet", "DaemonSet":
	default:
		return diagnose.Input{}, fmt.Errorf("the guard does not watch %s", t.Kind)
	}
	floor := s.liveGeneration(ctx, t)
	w := newObject(t.Kind)
	err := s.g.cache.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: t.Name}, w)
	if apierrors.IsNotFound(err) {
		return diagnose.Input{}, nil
	}
	if err != nil {
		return diagnose.Input{}, err
	}
	if w.GetGeneration() < floor {
		return diagnose.Input{}, nil
	}
	return s.g.input(ctx, w)
}

// liveGeneration reads a target's generation from the API once (the one request a rollback's tracking
// makes); 0, so no wait, when it cannot.
func (s *source) liveGeneration(ctx context.Context, t track.Target) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.generation[t]; ok {
		return g
	}
	var gen int64
	apps := s.g.kc.Typed.AppsV1()
	get := metav1.GetOptions{}
	switch t.Kind {
	case "Deployment":
		if o, err := apps.Deployments(t.Namespace).Get(ctx, t.Name, get); err == nil {
			gen = o.Generation
		}
	case "StatefulSet":
		if o, err := apps.StatefulSets(t.Namespace).Get(ctx, t.Name, get); err == nil {
			gen = o.Generation
		}
	case "DaemonSet":
		if o, err := apps.DaemonSets(t.Namespace).Get(ctx, t.Name, get); err == nil {
			gen = o.Generation
		}
	}
	s.generation[t] = gen
	return gen
}

func (s *source) Autoscaler(ctx context.Context) diagnose.Autoscaler { return s.g.autoscaler(ctx) }

// autoscalerMemo holds the last lookup of the cluster's node autoscaler.
type autoscalerMemo struct {
	mu         sync.Mutex
	at         time.Time
	v          diagnose.Autoscaler
	refreshing bool
}

// autoscaler is the cluster's node autoscaler, looked up at most once per autoscalerTTL. Only the first
// lookup is waited for; a stale answer is refreshed in the background, so followers re-diagnosing every
// tick never queue behind the API.
func (g *Guard) autoscaler(ctx context.Context) diagnose.Autoscaler {
	m := &g.scaler
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.at.IsZero() {
		m.v, m.at = g.kc.Autoscaler(ctx), time.Now()
		return m.v
	}
	if time.Since(m.at) > autoscalerTTL && !m.refreshing {
		m.refreshing = true
		go func() {
			v := g.kc.Autoscaler(context.WithoutCancel(ctx))
			m.mu.Lock()
			m.v, m.at, m.refreshing = v, time.Now(), false
			m.mu.Unlock()
		}()
	}
	return m.v
}
