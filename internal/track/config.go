package track

import (
	"context"
	"time"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/kube"
)

// configLookup answers diagnose.Input.Config: whether the ConfigMaps, Secrets and keys the kubelet reports
// missing exist now. Only containers waiting on one cause a lookup, and each answer is kept for
// configRecheck, so a tick reads the API at most once a second per missing object. A lookup that fails (no
// permission: the guard may not read ConfigMaps) leaves the object unknown, which the diagnosis waits on
// longer; that answer is kept too, or every pass would ask again.
type configLookup struct {
	c       *kube.Client
	answers map[string]configAnswer
}

type configAnswer struct {
	present, known bool
	at             time.Time
}

const configRecheck = time.Second

func newConfigLookup(c *kube.Client) *configLookup {
	return &configLookup{c: c, answers: map[string]configAnswer{}}
}

func (l *configLookup) facts(ctx context.Context, ns string, in diagnose.Input, now time.Time) map[string]bool {
	refs := diagnose.MissingConfig(in)
	if len(refs) == 0 || l == nil || l.c == nil {
		return nil
	}
	out := map[string]bool{}
	for _, ref := range refs {
		key := ns + "/" + ref.String()
		a, ok := l.answers[key]
		if !ok || now.Sub(a.at) >= configRecheck {
			present, err := l.c.ConfigPresent(ctx, ns, ref)
			a = configAnswer{present: present, known: err == nil, at: now}
			l.answers[key] = a
		}
		if a.known {
			out[ref.String()] = a.present
		}
	}
	return out
}
