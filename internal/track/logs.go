package track

import (
	"context"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/kube"
)

// logCache fetches the previous log of crashed containers, and the output so far of containers that
// never became ready, once each; where the API cannot serve logs (no kubelet reachable, no permission)
// the failure is still reported, only without those lines.
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
	return r == diagnose.CrashLoop || r == diagnose.JobFailed || r == diagnose.VerificationFailed || r == diagnose.ReadinessFailed
}

// maxOutputs bounds how many unready containers' output one verdict fetches: a few show whether the app
// is stuck or dead; every replica's would only slow the verdict.
const maxOutputs = 3

// want fetches logs of crashed containers (restarted ones: their previous run; a Job's failed ones: their
// own) and the output of running, unready ones, each not fetched before; it reports whether it found any
// new lines. The fetches run at once (at most 8): each is a round trip through the API server to a
// kubelet, and the verdict waits for them, so one after another they would add a round trip per pod.
func (l *logCache) want(ctx context.Context, pods []corev1.Pod) bool {
	type reader func(ctx context.Context, namespace, pod, container string, lines int64) string
	type fetch struct {
		key, namespace, pod, container string
		read                           reader
	}
	var todo []fetch
	l.mu.Lock()
	outputs := 0
	add := func(key string, p *corev1.Pod, container string, read reader) {
		if !l.fetched[key] {
			l.fetched[key] = true
			todo = append(todo, fetch{key, p.Namespace, p.Name, container, read})
		}
	}
	for i := range pods {
		p := &pods[i]
		for _, cs := range p.Status.ContainerStatuses {
			switch {
			case cs.LastTerminationState.Terminated != nil:
				add(p.Name+"/"+cs.Name, p, cs.Name, l.c.PreviousLog)
			case cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0:
				add(p.Name+"/"+cs.Name, p, cs.Name, l.c.CurrentLog)
			}
			if cs.State.Running != nil && !cs.Ready && outputs < maxOutputs {
				outputs++
				add(diagnose.OutputKey(p.Name, cs.Name), p, cs.Name, l.c.CurrentLog)
			}
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
