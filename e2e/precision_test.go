package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestBumpyReleasesStayHealthy: releases that look like a failure for a while and then turn healthy (the
// sandbox's bumpy scenarios) are reported healthy and not rolled back, with rollguard's default thresholds
// and automatic rollback on. Each case also proves the bump happened, so the test cannot pass on a release
// that was never bumpy.
func TestBumpyReleasesStayHealthy(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// v1Flags deploy the healthy first release; v1 and v2 are the releases.
		v1Flags []string
		v1, v2  app
		// evictIn sets the evicted scenario's deadline this long after v1 is healthy.
		evictIn time.Duration
		// bumped checks the namespace shows the bump (events, restarts, evicted pods, slow readiness).
		bumped func(t *testing.T, ns string)
	}{
		{
			name:   "registry blip",
			v2:     app{image: "registry.example.com/web:2.0.0", scenario: "pull-blip", annotations: map[string]string{"sandbox.rollguard.dev/pull-recovers-after": "4s"}},
			bumped: hasEvent("BackOff", "Back-off pulling image"),
		},
		{
			// v1 is probed and ready at once, so the history says 1 s: the restarted container must not be
			// timed by it (CI once failed this release on a loaded machine).
			name:   "one early restart",
			v1:     app{readinessProbe: true},
			v2:     app{image: "registry.example.com/web:2.0.0", scenario: "restart-once", readinessProbe: true},
			bumped: restarted,
		},
		{
			name:    "evicted pod",
			v2:      app{image: "registry.example.com/web:2.0.0", scenario: "evicted", annotations: map[string]string{}},
			evictIn: 3 * time.Second,
			bumped:  evicted,
		},
		{
			// The app needs 15 s to become ready; its probe (1 s × 2) and the first-deploy slack (10 s)
			// allow 12 s. Its first deploy says so with --readiness-slack; the second needs nothing: the
			// previous revision's pods show how long it takes.
			name:    "slow starter with history",
			v1Flags: []string{"--readiness-slack", "1m"},
			v1:      app{replicas: 1, scenario: "slow-ready", readinessProbe: true, annotations: map[string]string{"sandbox.rollguard.dev/ready-after": "15s"}},
			v2: app{replicas: 1, image: "registry.example.com/web:2.0.0", scenario: "slow-ready", readinessProbe: true,
				annotations: map[string]string{"sandbox.rollguard.dev/ready-after": "15s"}},
			bumped: slowerThan(12 * time.Second),
		},
		{
			// Recreate removes the old pods before the new ones start: the start-up time comes from the
			// release record of the first deploy.
			name:    "slow starter with history, recreated",
			v1Flags: []string{"--readiness-slack", "1m"},
			v1: app{replicas: 1, recreate: true, scenario: "slow-ready", readinessProbe: true,
				annotations: map[string]string{"sandbox.rollguard.dev/ready-after": "15s"}},
			v2: app{replicas: 1, recreate: true, image: "registry.example.com/web:2.0.0", scenario: "slow-ready", readinessProbe: true,
				annotations: map[string]string{"sandbox.rollguard.dev/ready-after": "15s"}},
			bumped: slowerThan(12 * time.Second),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			v1 := append([]string{"deploy", "-f", "-", "-n", ns, "--timeout", "2m"}, tc.v1Flags...)
			if r := rollguard(t, tc.v1.yaml(), v1...); r.code != 0 {
				t.Fatalf("v1: exit %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if tc.evictIn > 0 {
				tc.v2.annotations["sandbox.rollguard.dev/evict-before"] = time.Now().Add(tc.evictIn).UTC().Format(time.RFC3339)
			}
			r := rollguard(t, tc.v2.yaml(), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "2m")
			if r.code != 0 {
				t.Fatalf("v2: exit %d, want 0 (healthy)\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			rep := parseReport(t, r)
			if rep.Outcome != "succeeded" || len(rep.Workloads) != 1 || rep.Workloads[0].Status != "healthy" {
				t.Fatalf("report = %+v, want one healthy workload and outcome succeeded", rep)
			}
			d, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if img := d.Spec.Template.Spec.Containers[0].Image; img != tc.v2.image {
				t.Fatalf("deployment runs %s, want the new release %s (rolled back?)", img, tc.v2.image)
			}
			tc.bumped(t, ns)
		})
	}
}

func hasEvent(reason, fragment string) func(t *testing.T, ns string) {
	return func(t *testing.T, ns string) {
		evs, err := cluster.Client().CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Items {
			if e.Reason == reason && strings.Contains(e.Message, fragment) {
				return
			}
		}
		t.Errorf("no %s event mentioning %q: the release was not bumpy", reason, fragment)
	}
}

func newPods(t *testing.T, ns string) []corev1.Pod {
	pods, err := cluster.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if len(p.Spec.Containers) > 0 && strings.HasSuffix(p.Spec.Containers[0].Image, ":2.0.0") {
			out = append(out, p)
		}
	}
	return out
}

func restarted(t *testing.T, ns string) {
	for _, p := range newPods(t, ns) {
		if cs := p.Status.ContainerStatuses; len(cs) > 0 && cs[0].RestartCount == 1 && cs[0].Ready {
			return
		}
	}
	t.Error("no new pod restarted once and then became ready: the release was not bumpy")
}

func evicted(t *testing.T, ns string) {
	for _, p := range newPods(t, ns) {
		if p.Status.Phase == corev1.PodFailed && p.Status.Reason == "Evicted" {
			return
		}
	}
	t.Error("no new pod was evicted: the release was not bumpy")
}

// slowerThan checks a new pod took longer than d from start to Ready: longer than the probes and the
// first-deploy slack allow, so only the app's history kept it from failing.
func slowerThan(d time.Duration) func(t *testing.T, ns string) {
	return func(t *testing.T, ns string) {
		for _, p := range newPods(t, ns) {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.Status.StartTime != nil &&
					c.LastTransitionTime.Sub(p.Status.StartTime.Time) >= d {
					return
				}
			}
		}
		t.Errorf("no new pod took %s or more to become ready: the history rule was not needed", d)
	}
}

// TestPodsRefusedAtCreation: releases whose pods the API server refuses are stopped by the pod preflight
// (exit 3, nothing changed); the same pods arriving another way (someone else updates the Deployment) are
// named by `rollguard status` in the same words, not left to the timeout.
func TestPodsRefusedAtCreation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// prepare readies the namespace before v1 (LimitRange, Pod Security label, admission policy).
		prepare func(t *testing.T, ns string)
		v2      app
		// change makes the same change to the live Deployment's template.
		change func(*corev1.PodTemplateSpec)
		reason string
		says   string
	}{
		{
			name:    "invalid after LimitRange defaulting",
			prepare: limitRangeDefault("100m"),
			v2:      app{image: "registry.example.com/web:2.0.0", cpuRequest: "200m"},
			change: func(p *corev1.PodTemplateSpec) {
				p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resourceMust("200m")}
			},
			reason: "LimitRangeViolation",
			says:   "default cpu limit 100m is below the request 200m",
		},
		{
			name:    "quota a surge cannot fit",
			prepare: podQuota(3),
			v2:      app{image: "registry.example.com/web:2.0.0"},
			change:  func(p *corev1.PodTemplateSpec) { p.Spec.Containers[0].Image = "registry.example.com/web:2.0.0" },
			reason:  "QuotaExceeded",
			says:    `exceeded ResourceQuota "pods"`,
		},
		{
			name:    "missing service account",
			prepare: func(*testing.T, string) {},
			v2:      app{image: "registry.example.com/web:2.0.0", serviceAccount: "ghost"},
			change:  func(p *corev1.PodTemplateSpec) { p.Spec.ServiceAccountName = "ghost" },
			reason:  "PermissionDenied",
			says:    `ServiceAccount "ghost" not found`,
		},
		{
			name:    "PodSecurity",
			prepare: podSecurity("baseline"),
			v2:      app{image: "registry.example.com/web:2.0.0", hostNetwork: true},
			change:  func(p *corev1.PodTemplateSpec) { p.Spec.HostNetwork = true },
			reason:  "PermissionDenied",
			says:    `violates PodSecurity "baseline`,
		},
		{
			name:    "admission policy",
			prepare: denyImagePolicy(":2.0.0"),
			v2:      app{image: "registry.example.com/web:2.0.0"},
			change:  func(p *corev1.PodTemplateSpec) { p.Spec.Containers[0].Image = "registry.example.com/web:2.0.0" },
			reason:  "AdmissionDenied",
			says:    "release 2.0.0 is blocked",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			tc.prepare(t, ns)
			if r := rollguard(t, app{}.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m"); r.code != 0 {
				t.Fatalf("v1: exit %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			ctx := context.Background()
			deps := cluster.Client().AppsV1().Deployments(ns)
			before, err := deps.Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}

			r := rollguard(t, tc.v2.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m")
			if r.code != 3 {
				t.Fatalf("deploy: exit %d, want 3 (preflight refused)\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.reason) || !strings.Contains(r.stderr, tc.says) || !strings.Contains(r.stderr, "nothing was applied") {
				t.Errorf("stderr does not name %s (%q):\n%s", tc.reason, tc.says, r.stderr)
			}
			after, err := deps.Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if after.Generation != before.Generation {
				t.Fatalf("deployment changed (generation %d → %d) although the preflight refused", before.Generation, after.Generation)
			}

			tc.change(&after.Spec.Template)
			if _, err := deps.Update(ctx, after, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			r = rollguard(t, "", "status", "deployment/web", "-n", ns, "-o", "json", "--timeout", "5m")
			if r.code != 2 {
				t.Fatalf("status: exit %d, want 2\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			w := parseReport(t, r).Workloads[0]
			if w.Reason != tc.reason || !strings.Contains(w.Message, tc.says) {
				t.Fatalf("status: reason %s (%s), want %s saying %q", w.Reason, w.Message, tc.reason, tc.says)
			}
		})
	}
}
