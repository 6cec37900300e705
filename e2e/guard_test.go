package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/sandbox"
)

const (
	goodImage = "registry.example.com/web:1.0.0"
	badImage  = "registry.example.com/web:2.0.0"
)

func goodWeb(annotations string) string {
	return withAnnotations(app{}.yaml(), annotations)
}

func badWeb(annotations string) string {
	return withAnnotations(app{image: badImage, scenario: "image-pull-failure"}.yaml(), annotations)
}

// withAnnotations puts annotations (YAML lines "key: value") on the workload's own metadata.
func withAnnotations(manifest, annotations string) string {
	if annotations == "" {
		return manifest
	}
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(annotations), "\n") {
		b.WriteString("    " + strings.TrimSpace(l) + "\n")
	}
	return strings.Replace(manifest, "metadata:\n  name: web\n", "metadata:\n  name: web\n  annotations:\n"+b.String(), 1)
}

// runs reports whether a record rolled out image.
func runs(r *release.Record, image string) bool {
	return len(r.Workloads) > 0 && slices.Contains(r.Workloads[0].Images, image)
}

// waitForRelease waits until n notifications about a release arrived, and returns them in order.
func waitForRelease(t *testing.T, h *hooks, id string, n int) []notifyEvent {
	t.Helper()
	var got []notifyEvent
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		got = got[:0]
		for _, e := range h.events(t) {
			if e.Release == id {
				got = append(got, e)
			}
		}
		return len(got) >= n, nil
	})
	if err != nil {
		t.Fatalf("notifications about %s: %v, want %d", id, kinds(got), n)
	}
	return got
}

// TestGuard runs one guard (as its ServiceAccount) and, beside it, what users do: a broken `kubectl
// apply` is rolled back with the right reason; a hold waits for `rollguard approve`; a re-applied
// known-bad template is held, not rolled back twice; a rollout a `rollguard deploy` is tracking is left to
// it; unguarded and opted-out workloads are untouched.
func TestGuard(t *testing.T) {
	lease := cluster.Namespace(t)
	hooks := newHooks(t)
	g := startGuardArgs(t, lease, nil, "--notify", hooks.url("json"))

	// Namespaces the guard must not touch, broken from the start of the test to its end.
	unguarded := cluster.Namespace(t)
	kubectl(t, goodWeb(""), "apply", "-n", unguarded, "-f", "-")
	optedOut := guardedNamespace(t)
	kubectl(t, goodWeb("rollguard.dev/guard: disabled"), "apply", "-n", optedOut, "-f", "-")
	waitAvailable(t, unguarded, "web", goodImage)
	waitAvailable(t, optedOut, "web", goodImage)
	kubectl(t, badWeb(""), "apply", "-n", unguarded, "-f", "-")
	kubectl(t, badWeb("rollguard.dev/guard: disabled"), "apply", "-n", optedOut, "-f", "-")

	// A rollguard deploy in a guarded namespace, held on failure: the guard must neither roll it back nor
	// record it (checked at the end, once the guard has had the other scenarios' time to misbehave).
	// Its v2 fails by ConfigError, after the 3 s config grace, not by ImagePullFailed: the deploy must still
	// hold the lock when the guard reconciles the change, and an image missing from the registry ends the
	// deploy within a few tenths of a second of its apply, which a loaded CI machine's guard did not match.
	owned := guardedNamespace(t)
	deployV1(t, owned)
	slowV2 := strings.Replace(releaseV2Broken(), "scenario: "+sandbox.ScenarioImagePullFailure, "scenario: "+sandbox.ScenarioConfigError, 1)
	if r := rollguard(t, slowV2, "deploy", "-f", "-", "-n", owned, "--on-failure", "hold", "--timeout", "2m"); r.code != 5 || !strings.Contains(r.stdout+r.stderr, "ConfigError") {
		t.Fatalf("held deploy: exit %d, want 5\n%s", r.code, r.stderr)
	}
	if n := g.metric(t, `rollguard_guard_skipped_total{reason="deploy-lock"}`); n == 0 {
		t.Error("the guard never saw the deploy's rollout (no deploy-lock skip counted)")
	}

	t.Run("rollback, then the known-bad template again", func(t *testing.T) {
		ns := guardedNamespace(t)
		kubectl(t, goodWeb(""), "apply", "-n", ns, "-f", "-")
		waitAvailable(t, ns, "web", goodImage)
		kubectl(t, badWeb(""), "apply", "-n", ns, "-f", "-")
		rec := waitGuardRecord(t, ns, "web", func(r *release.Record) bool { return runs(r, badImage) && !r.Outcome.Unfinished() })
		if rec.Outcome != release.RolledBack || rec.Reason != "ImagePullFailed" {
			t.Fatalf("guard record: %s %s (%s), want rolled back for ImagePullFailed", rec.Outcome, rec.Reason, rec.Message)
		}
		if rec.DeployedBy != "kubectl-client-side-apply" {
			t.Errorf("record names %q as the changer, want kubectl's field manager", rec.DeployedBy)
		}
		waitAvailable(t, ns, "web", goodImage)
		waitEvents(t, ns, "web", "RolloutFailed", "RolledBack")
		notified := map[string]bool{}
		for _, e := range waitForRelease(t, hooks, rec.ID, 2) {
			notified[e.Event] = true
			if e.Event == "release_failed" && (e.Reason != "ImagePullFailed" || e.Workload != "Deployment/web" || len(e.Evidence) == 0) {
				t.Errorf("release_failed notification: %+v", e)
			}
		}
		if !notified["release_failed"] || !notified["rolled_back"] {
			t.Errorf("notifications of %s: %v, want release_failed and rolled_back", rec.ID, notified)
		}
		h := rollguard(t, "", "history", "deployment/web", "-n", ns)
		if !strings.Contains(h.stdout, "rolled back by guard: ImagePullFailed") {
			t.Errorf("history does not show the guard's rollback:\n%s\n%s", h.stdout, h.stderr)
		}

		// GitOps (or anyone) applies the same broken template again: held, not rolled back in a loop.
		before := g.metric(t, "rollguard_guard_known_bad_reapplied_total")
		kubectl(t, badWeb(""), "apply", "-n", ns, "-f", "-")
		held := waitGuardRecord(t, ns, "web", func(r *release.Record) bool { return r.ID != rec.ID && !r.Outcome.Unfinished() })
		if held.Outcome != release.PendingApproval || held.Reason != "KnownBadRevision" {
			t.Fatalf("re-applied template: %s %s, want pending approval for KnownBadRevision", held.Outcome, held.Reason)
		}
		if img := templateImage(t, ns); img != badImage {
			t.Errorf("the re-applied template was rolled back again: it runs %s", img)
		}
		waitEvents(t, ns, "web", "KnownBadRevision")
		var after float64
		if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			after = g.metric(t, "rollguard_guard_known_bad_reapplied_total")
			return after == before+1, nil
		}); err != nil {
			t.Errorf("known-bad metric went from %v to %v, want +1", before, after)
		}
		rolledBack := 0
		for _, r := range records(t, ns, "web") {
			if r.Outcome == release.RolledBack {
				rolledBack++
			}
		}
		if rolledBack != 1 {
			t.Errorf("%d rolled-back records, want exactly 1", rolledBack)
		}
	})

	t.Run("hold waits for approve", func(t *testing.T) {
		ns := guardedNamespace(t)
		kubectl(t, goodWeb("rollguard.dev/on-failure: hold"), "apply", "-n", ns, "-f", "-")
		waitAvailable(t, ns, "web", goodImage)
		kubectl(t, badWeb("rollguard.dev/on-failure: hold"), "apply", "-n", ns, "-f", "-")
		rec := waitGuardRecord(t, ns, "web", func(r *release.Record) bool { return r.Outcome == release.PendingApproval })
		if rec.Reason != "ImagePullFailed" {
			t.Errorf("held for %s, want ImagePullFailed", rec.Reason)
		}
		if img := templateImage(t, ns); img != badImage {
			t.Fatalf("a held rollout was changed: it runs %s", img)
		}
		held := waitForRelease(t, hooks, rec.ID, 2)
		if e := held[len(held)-1]; e.Event != "guard_hold" || e.Approval == nil || e.Approval.ApproveCommand != "rollguard approve "+rec.ID+" -n "+ns {
			t.Errorf("hold notification: %+v", e)
		}
		a := rollguard(t, "", "approve", rec.ID, "-n", ns, "--timeout", "2m")
		if a.code != 0 {
			t.Fatalf("approve: exit %d\n%s\n%s", a.code, a.stdout, a.stderr)
		}
		waitAvailable(t, ns, "web", goodImage)
		if r := record(t, ns, rec.ID); r.Outcome != release.RolledBack || r.Approval == nil || r.Approval.Decision != release.Approved {
			t.Errorf("after approve: %s %+v", r.Outcome, r.Approval)
		}
		// The approved rollback is not a new rollout for the guard.
		if rs := guardRecords(t, ns, "web"); rs[0].ID != rec.ID {
			t.Errorf("the guard recorded the approved rollback as a rollout: %s %s", rs[0].ID, rs[0].Outcome)
		}
	})

	// A DaemonSet is rolled back; a StatefulSet is held, or rolled back although its crashing pod blocks
	// the StatefulSet controller (the guard's forced rollback deletes that pod).
	t.Run("statefulsets and daemonsets", func(t *testing.T) {
		for _, tc := range []struct {
			kind, scenario, reason, policy string
			want                           release.Outcome
		}{
			{"StatefulSet", "crash-loop", "CrashLoop", "hold", release.PendingApproval},
			{"StatefulSet", "crash-loop", "CrashLoop", "rollback", release.RolledBack},
			{"DaemonSet", "image-pull-failure", "ImagePullFailed", "rollback", release.RolledBack},
		} {
			t.Run(tc.kind+"/"+tc.policy, func(t *testing.T) {
				t.Parallel()
				ns := guardedNamespace(t)
				a := app{kind: tc.kind, replicas: 2}
				kubectl(t, withAnnotations(a.yaml(), "rollguard.dev/on-failure: "+tc.policy), "apply", "-n", ns, "-f", "-")
				kubectl(t, "", "rollout", "status", strings.ToLower(tc.kind)+"/web", "-n", ns, "--timeout", "2m")
				a.image, a.scenario = badImage, tc.scenario
				kubectl(t, withAnnotations(a.yaml(), "rollguard.dev/on-failure: "+tc.policy), "apply", "-n", ns, "-f", "-")
				rec := waitGuardRecord(t, ns, "web", func(r *release.Record) bool { return runs(r, badImage) && !r.Outcome.Unfinished() })
				if rec.Outcome != tc.want || rec.Reason != tc.reason {
					t.Fatalf("%s: %s %s (%s), want %s for %s", tc.kind, rec.Outcome, rec.Reason, rec.Message, tc.want, tc.reason)
				}
				if tc.want == release.RolledBack {
					kubectl(t, "", "rollout", "status", strings.ToLower(tc.kind)+"/web", "-n", ns, "--timeout", "2m")
					if img := templateImageOf(t, tc.kind, ns); img != goodImage {
						t.Errorf("%s rolled back, but its template runs %s", tc.kind, img)
					}
				}
				if tc.kind == "StatefulSet" && tc.want == release.RolledBack {
					waitEvents(t, ns, "web", "ForcedRollback", "RolledBack")
				}
			})
		}
	})

	if rs := guardRecords(t, owned, "web"); len(rs) != 0 {
		t.Errorf("the guard recorded a deploy's rollout: %s %s", rs[0].ID, rs[0].Outcome)
	}
	if img := templateImage(t, owned); img != badImage {
		t.Errorf("the guard changed a rollout the deploy held: it runs %s", img)
	}
	noHookURL(t, g.out.String())
	// Everything above has been judged while the unguarded workloads stayed broken.
	for _, ns := range []string{unguarded, optedOut} {
		if img := templateImage(t, ns); img != badImage {
			t.Errorf("%s: an unguarded workload was changed: it runs %s", ns, img)
		}
		if rs := guardRecords(t, ns, "web"); len(rs) != 0 {
			t.Errorf("%s: the guard recorded an unguarded workload", ns)
		}
		if ev := eventReasons(t, ns, "web"); len(ev) != 0 {
			t.Errorf("%s: the guard emitted events about an unguarded workload: %v", ns, ev)
		}
	}
}

// TestGuardScaleIsNotARollout: scaling a guarded Deployment (by hand or an HPA) records nothing; the
// template change after it is the only rollout.
func TestGuardScaleIsNotARollout(t *testing.T) {
	ns := guardedNamespace(t)
	kubectl(t, goodWeb(""), "apply", "-n", ns, "-f", "-")
	waitAvailable(t, ns, "web", goodImage)
	startGuard(t, cluster.Namespace(t)).waitLeading(t)
	kubectl(t, "", "scale", "deployment/web", "-n", ns, "--replicas", "5")
	waitAvailable(t, ns, "web", goodImage)
	const next = "registry.example.com/web:1.1.0"
	kubectl(t, "", "set", "image", "deployment/web", "-n", ns, "web="+next)
	rec := waitGuardRecord(t, ns, "web", func(r *release.Record) bool { return r.Outcome == release.Succeeded })
	if rs := guardRecords(t, ns, "web"); len(rs) != 1 || !slices.Equal(rec.Workloads[0].Images, []string{next}) {
		t.Errorf("%d guard records, newest for %v: want one, for the image change", len(rs), rec.Workloads[0].Images)
	}
	if rec.DeployedBy != "kubectl-set" {
		t.Errorf("changed by %q, want kubectl-set", rec.DeployedBy)
	}
}

// TestGuardKilledMidRollback kills the guard at each point of its rollback; the next guard finishes it,
// once: one rolled-back record, the workload healthy on the good image.
func TestGuardKilledMidRollback(t *testing.T) {
	for _, point := range append(crashpoint.GuardPoints, "rollback:started", "rollback:restored") {
		t.Run(point, func(t *testing.T) {
			lease := cluster.Namespace(t)
			ns := guardedNamespace(t)
			kubectl(t, goodWeb(""), "apply", "-n", ns, "-f", "-")
			waitAvailable(t, ns, "web", goodImage)
			first := startGuard(t, lease, crashpoint.Env+"="+point)
			kubectl(t, badWeb(""), "apply", "-n", ns, "-f", "-")
			select {
			case <-first.done:
			case <-time.After(2 * time.Minute):
				t.Fatalf("the guard never reached %s\n%s", point, first.out.String())
			}
			startGuard(t, lease)
			rec := waitGuardRecord(t, ns, "web", func(r *release.Record) bool { return !r.Outcome.Unfinished() })
			if rec.Outcome != release.RolledBack {
				t.Fatalf("after restart: %s (%s), want rolled back", rec.Outcome, rec.Message)
			}
			waitAvailable(t, ns, "web", goodImage)
			if rs := guardRecords(t, ns, "web"); len(rs) != 1 {
				t.Errorf("%d guard records, want 1 (no double rollback)", len(rs))
			}
		})
	}
}

// TestGuardLeaderKilled runs two replicas; the leader is killed and the standby takes over and heals.
func TestGuardLeaderKilled(t *testing.T) {
	ns := guardedNamespace(t)
	kubectl(t, goodWeb(""), "apply", "-n", ns, "-f", "-")
	waitAvailable(t, ns, "web", goodImage)
	lease := cluster.Namespace(t)
	a := startGuard(t, lease)
	b := startGuard(t, lease)
	var leader, standby *guardProc
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		switch {
		case a.leading(t):
			leader, standby = a, b
		case b.leading(t):
			leader, standby = b, a
		}
		return leader != nil, nil
	})
	if err != nil {
		t.Fatal("no guard became leader")
	}
	if standby.leading(t) {
		t.Fatal("both replicas lead")
	}
	leader.kill()
	kubectl(t, badWeb(""), "apply", "-n", ns, "-f", "-")
	rec := waitGuardRecord(t, ns, "web", func(r *release.Record) bool { return !r.Outcome.Unfinished() })
	if rec.Outcome != release.RolledBack {
		t.Fatalf("after failover: %s (%s), want rolled back", rec.Outcome, rec.Message)
	}
	if !standby.leading(t) {
		t.Error("the standby does not report leading")
	}
	waitAvailable(t, ns, "web", goodImage)
	d, err := cluster.Client().CoordinationV1().Leases(lease).Get(context.Background(), "rollguard-guard", metav1.GetOptions{})
	if err != nil || d.Spec.HolderIdentity == nil {
		t.Fatalf("leader Lease: %v", err)
	}
}

// templateImageOf is the first container image of the "web" StatefulSet or DaemonSet's template.
func templateImageOf(t *testing.T, kind, ns string) string {
	t.Helper()
	apps := cluster.Client().AppsV1()
	var spec corev1.PodSpec
	switch kind {
	case "StatefulSet":
		o, err := apps.StatefulSets(ns).Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		spec = o.Spec.Template.Spec
	default:
		o, err := apps.DaemonSets(ns).Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		spec = o.Spec.Template.Spec
	}
	return spec.Containers[0].Image
}
