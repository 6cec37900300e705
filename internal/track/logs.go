package track

import (
	"context"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/kube"
)

// logCache fetches the previous log of crashed containers once each; where the API cannot serve logs
// (no kubelet reachable, no permission) the crash is still reported, only without its last lines.
type logCache struct {
	c       *kube.Client
	mu      sync.Mutex
	logs    map[string]string
	fetched map[string]bool
}

func newLogCache(c *kube.Client) *logCache {
	return &logCache{c: c, logs: map[string]string{}, fetched: map[string]bool{}}
}

func (l *logCache) get() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]string, len(l.logs))
	for k, v := range l.logs {
		out[k] = v
	}
	return out
}

// wantsLogs reports the verdicts whose evidence carries the failed containers' last log lines.
func wantsLogs(r diagnose.Reason) bool {
	return r == diagnose.CrashLoop || r == diagnose.JobFailed || r == diagnose.VerificationFailed
}

// want fetches logs of crashed containers (restarted ones: their previous run; a Job's failed ones: their
// own) not fetched before; it reports whether it found any new lines. The fetches run at once (at most 8):
// each is a round trip through the API server to a kubelet, and the verdict waits for them, so one after
// another they would add a round trip per crashed pod.
func (l *logCache) want(ctx context.Context, pods []corev1.Pod) bool {
	type crashed struct {
		key, namespace, pod, container string
		read                           func(ctx context.Context, namespace, pod, container string, lines int64) string
	}
	var todo []crashed
	l.mu.Lock()
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			read := l.c.PreviousLog
			if cs.LastTerminationState.Terminated == nil {
				if t := cs.State.Terminated; t == nil || t.ExitCode == 0 {
					continue
				}
				read = l.c.FinishedLog
			}
			key := p.Name + "/" + cs.Name
			if l.fetched[key] {
				continue
			}
			l.fetched[key] = true
			todo = append(todo, crashed{key, p.Namespace, p.Name, cs.Name, read})
		}
	}
	l.mu.Unlock()
	found := false
	var wg sync.WaitGroup
	slots := make(chan struct{}, 8)
	for _, c := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			text := c.read(ctx, c.namespace, c.pod, c.container, 20)
			if strings.TrimSpace(text) != "" {
				l.mu.Lock()
				l.logs[c.key] = text
				found = true
				l.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return found
}
