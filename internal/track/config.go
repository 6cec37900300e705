package track

import (
	"context"
	"time"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/kube"
)

// configLookup answers diagnose.Input.Config: whether the ConfigMaps, Secrets and keys the kubelet reports
// missing exist now. Only containers waiting on one cause a lookup, and each answer is kept for
// configRecheck, so a tick reads the API at most once a second per missing object. A lookup that fails
// leaves the object unknown, which the diagnosis waits on longer.
type configLookup struct {
	c       *kube.Client
	answers map[string]configAnswer
}

type configAnswer struct {
	present bool
	at      time.Time
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
			if err != nil {
				continue
			}
			a = configAnswer{present: present, at: now}
			l.answers[key] = a
		}
		out[ref.String()] = a.present
	}
	return out
}
