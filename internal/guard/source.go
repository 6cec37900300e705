package guard

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/track"
)

// autoscalerTTL is how long a looked-up node autoscaler is trusted: it is installed or removed rarely,
// and a storm of rollouts must not look it up once each.
const autoscalerTTL = time.Minute

// source lets the tracker that proves a rollback healthy read the guard's caches (track.Source): the
// guard already watches every pod, ReplicaSet and event of the cluster once. The tracker judges a
// restored workload only once the cache holds the generation the restore wrote (track.Options.Applied),
// so a rollback is never failed on the very rollout it undoes.
type source struct{ g *Guard }

func newSource(g *Guard) *source { return &source{g: g} }

func (s *source) Input(ctx context.Context, t track.Target) (diagnose.Input, error) {
	switch t.Kind {
	case "Deployment", "StatefulSet", "DaemonSet":
	default:
		return diagnose.Input{}, fmt.Errorf("the guard does not watch %s", t.Kind)
	}
	w := newObject(t.Kind)
	err := s.g.cache.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: t.Name}, w)
	if apierrors.IsNotFound(err) {
		return diagnose.Input{}, nil
	}
	if err != nil {
		return diagnose.Input{}, err
	}
	return s.g.input(ctx, w)
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
