package rollout

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rollguard/rollguard/sandbox"
)

// The precision table's real-node rows: the same comparison (rollguard deploy vs kubectl apply + rollout
// status, in the same run) on the sandbox's real node, where the bumps and failures are a real kubelet's,
// containerd's and runc's, not kwok stages.

var (
	realOnce    sync.Once
	realCluster *sandbox.Cluster
	realErr     error
)

// startRealNode starts the real-node sandbox on first use; TestMain's run stops it.
func startRealNode() (*sandbox.Cluster, error) {
	realOnce.Do(func() {
		if realErr = sandbox.RealNodeSupported(); realErr == nil {
			realCluster, realErr = sandbox.Start(context.Background(), sandbox.Options{RealNode: true, Nodes: 1, Progress: os.Stderr})
		}
	})
	return realCluster, realErr
}

func stopRealNode() {
	if realCluster != nil {
		if err := realCluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}

// realRelease is one release of the test app (sandbox/images/testapp) on the real node: 1 replica (the real
// node takes 30 pods, and a wave of rows runs at once), readiness probe on /healthz every second, failing
// after 3 misses.
type realRelease struct {
	image  string
	env    map[string]string
	memory string // limit, "48Mi"
	envKey string // an env var from ConfigMap web-config's key envKey
}

func (r realRelease) manifest() string {
	var env strings.Builder
	keys := make([]string, 0, len(r.env))
	for k := range r.env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&env, "        - name: %s\n          value: %q\n", k, r.env[k])
	}
	if r.envKey != "" {
		fmt.Fprintf(&env, "        - name: SETTING\n          valueFrom:\n            configMapKeyRef:\n              name: web-config\n              key: %s\n", r.envKey)
	}
	res := ""
	if r.memory != "" {
		res = fmt.Sprintf("        resources:\n          requests:\n            memory: %s\n          limits:\n            memory: %s\n", r.memory, r.memory)
	}
	envBlock := ""
	if env.Len() > 0 {
		envBlock = "        env:\n" + env.String()
	}
	return fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      nodeSelector:
        %s: real
      terminationGracePeriodSeconds: 0
      volumes:
      - name: state
        emptyDir: {}
      containers:
      - name: web
        image: %s
        ports:
        - containerPort: 8080
%s%s        volumeMounts:
        - name: state
          mountPath: /state
        readinessProbe:
          httpGet:
            path: /healthz
            port: 8080
          periodSeconds: 1
          failureThreshold: 3
`, sandbox.NodeLabel, r.image, envBlock, res)
}

// realRow is one release on the real node: bumpy ones must be reported healthy, broken ones failed.
type realRow struct {
	name   string
	broken bool
	v1, v2 realRelease // images are filled in from tags
	// blip stops the registry while v2 pulls and starts it again once both pipelines saw the refused pull.
	blip bool
}

func realRows() []realRow {
	slow := map[string]string{"READY_AFTER": "20s"}
	return []realRow{
		{name: "registry blip: registry stopped while v2 pulls (connection refused), started again", blip: true},
		{name: "slow starter: 20 s to ready, v1 as slow", v1: realRelease{env: slow}, v2: realRelease{env: slow}},
		{name: "one early restart: exits 1 s after its first start, ready 2 s after the restart",
			v2: realRelease{env: map[string]string{"CRASH_ONCE": "/state/crashed", "READY_AFTER": "2s"}}},
		{name: "missing image", broken: true, v2: realRelease{image: "missing"}},
		{name: "crash loop", broken: true, v2: realRelease{env: map[string]string{"CRASH_AT_START": "fatal: cannot reach database db:5432"}}},
		{name: "never ready", broken: true, v2: realRelease{env: map[string]string{"NEVER_READY": "1"}}},
		{name: "missing ConfigMap key", broken: true, v2: realRelease{envKey: "database-url"}},
		// It loads its data before it serves ready, like an app warming a cache: OOM-killed before ready.
		{name: "OOMKilled", broken: true, v2: realRelease{memory: "48Mi", env: map[string]string{"ALLOCATE_MB_PER_S": "200", "READY_AFTER": "30s"}}},
	}
}

// BenchmarkPrecisionRealNode: the real node's rows of the precision table. The registry blip runs alone (it
// stops the registry every pull needs), then the other bumpy rows at once, then the broken ones at once. Bumpy releases are deployed with
// rollguard's defaults (automatic rollback on) and must be reported healthy; broken ones with
// --on-failure none and a 60 s timeout against kubectl's rollout status --timeout=60s.
func BenchmarkPrecisionRealNode(b *testing.B) {
	rc, err := startRealNode()
	if err != nil {
		b.Skipf("no real node on this host: %v", err)
	}
	for i := 0; i < b.N; i++ {
		rows := realRows()
		run := func(row realRow) timing { return runRealRow(b, rc, i, row) }
		// The registry blip alone (it stops the registry every pull needs), then the other bumpy rows at
		// once, then the broken ones at once.
		healthy := append([]timing{run(rows[0])}, runAll(realRowsWhere(rows[1:], false), run)...)
		broken := runAll(realRowsWhere(rows[1:], true), run)
		reportBumpy(b, "real node: ", healthy)
		report(b, "real node: broken releases (apply → failure reported)", "rollguard deploy", "kubectl apply + rollout status --timeout=60s", broken)
	}
}

func realRowsWhere(rows []realRow, broken bool) []realRow {
	return slices.DeleteFunc(slices.Clone(rows), func(r realRow) bool { return r.broken != broken })
}

// runRealRow deploys v1 in two namespaces (with rollguard), then v2 with rollguard in one and with kubectl in
// the other, at the same time, and times both.
func runRealRow(b *testing.B, rc *sandbox.Cluster, iter int, row realRow) timing {
	ctx := context.Background()
	slug := strings.ToLower(strings.NewReplacer(" ", "-", ":", "", ",", "", "(", "", ")", "").Replace(row.name))
	if len(slug) > 20 {
		slug = strings.TrimRight(slug[:20], "-")
	}
	push := func(tag string) string {
		ref, err := rc.PushTestApp(ctx, fmt.Sprintf("bench-%s-%d-%s", slug, iter, tag))
		if err != nil {
			b.Errorf("%s: pushing the test app: %v", row.name, err)
		}
		return ref
	}
	v1, v2 := row.v1, row.v2
	v1.image = push("v1")
	if v2.image == "missing" {
		v2.image = strings.TrimSuffix(v1.image, "-v1") + "-never-pushed"
	} else {
		v2.image = push("v2")
	}
	nsR, nsK := rc.Namespace(b), rc.Namespace(b)
	for _, ns := range []string{nsR, nsK} {
		must(b, runOn(rc, v1.manifest(), rollguard, "deploy", "-f", "-", "-n", ns, "--timeout", "3m", "--readiness-slack", "1m"))
	}
	if row.blip {
		if err := rc.StopRegistry(); err != nil {
			b.Errorf("%s: stopping the registry: %v", row.name, err)
		}
		go restartRegistryOnRefusedPulls(b, rc, nsR, nsK)
	}
	t := timing{name: row.name}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		args := []string{"deploy", "-f", "-", "-n", nsR, "-o", "json", "--timeout", "3m"}
		if row.broken {
			args = []string{"deploy", "-f", "-", "-n", nsR, "-o", "json", "--timeout", "60s", "--on-failure", "none"}
		}
		start := time.Now()
		out := runOn(rc, v2.manifest(), rollguard, args...)
		t.rollguard = time.Since(start)
		if row.broken {
			t.verdict = reasonOf(out)
			if d, ok := afterApply(out); ok {
				t.verdict += fmt.Sprintf(" (%.1f s after the apply)", d.Seconds())
			}
		} else {
			t.verdict = outcomeOf(out)
		}
	}()
	go func() {
		defer wg.Done()
		timeout := "--timeout=3m"
		if row.broken {
			timeout = "--timeout=60s"
		}
		start := time.Now()
		must(b, runOn(rc, v2.manifest(), kubectl, "apply", "-f", "-", "-n", nsK))
		r := runOn(rc, "", kubectl, "rollout", "status", "deployment/web", "-n", nsK, timeout)
		t.kubectl = time.Since(start)
		if !row.broken {
			must(b, r)
		}
	}()
	wg.Wait()
	// Free the real node's pod slots for the rows still to come.
	for _, ns := range []string{nsR, nsK} {
		_ = rc.Client().CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	}
	return t
}

// restartRegistryOnRefusedPulls starts the registry again once a new pod in each namespace reported the
// refused pull: both pipelines met the same outage.
func restartRegistryOnRefusedPulls(b *testing.B, rc *sandbox.Cluster, namespaces ...string) {
	ctx := context.Background()
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, ns := range namespaces {
			if !refusedPull(ctx, rc, ns) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		b.Errorf("registry blip: no refused pull seen in %v: %v", namespaces, err)
	}
	if err := rc.StartRegistry(ctx); err != nil {
		b.Errorf("registry blip: starting the registry again: %v", err)
	}
}

func refusedPull(ctx context.Context, rc *sandbox.Cluster, ns string) bool {
	pods, err := rc.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false
	}
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && strings.Contains(w.Message, "connection refused") {
				return true
			}
		}
	}
	return false
}
