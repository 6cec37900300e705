package e2e

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRefusalsThatClearStayHealthy: the counter-scenarios of QuotaExceeded, LimitRangeViolation and
// PermissionDenied. The new pods are refused at creation for a reason someone fixes a moment later (the
// quota raised, the LimitRange corrected, the ServiceAccount created by a sibling step); the ReplicaSet's
// next retry creates them and the release is reported healthy, not rolled back, with rollguard's defaults.
// The failing side (nobody fixes it) is TestDeployFailureReasons. The pod preflight is off: it would refuse
// these releases before the apply (exit 3, nothing changed), and the refusal must reach the tracking, as it
// does for rollouts that `rollguard status` or the guard follow.
func TestRefusalsThatClearStayHealthy(t *testing.T) {
	t.Parallel()
	v2 := "registry.example.com/web:2.0.0"
	cases := []struct {
		name    string
		prepare func(t *testing.T, ns string) // before v1
		v1, v2  app
		refused string // a fragment of the FailedCreate event
		fix     func(t *testing.T, ns string)
	}{
		{name: "quota raised", prepare: podQuota(3), v2: app{image: v2}, refused: "exceeded quota", fix: raisePodQuota(4)},
		{name: "LimitRange corrected", prepare: cpuMax("500m"), v1: app{cpu: "100m"}, v2: app{image: v2, cpu: "1"},
			refused: "maximum cpu usage", fix: cpuMax("2")},
		{name: "ServiceAccount created", prepare: func(*testing.T, string) {}, v2: app{image: v2, serviceAccount: "late"},
			refused: `serviceaccount "late" not found`, fix: serviceAccount("late")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			tc.prepare(t, ns)
			if r := rollguard(t, tc.v1.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m"); r.code != 0 {
				t.Fatalf("v1: exit %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			deployThroughRefusal(t, ns, tc.v2, tc.refused, func() { tc.fix(t, ns) }, "--pod-preflight=false")
		})
	}
}

// deployThroughRefusal deploys v2 to ns, where a healthy v1 runs, waits until its new pods are refused (a
// FailedCreate naming refused), runs fix, and checks the release is reported healthy and not rolled back.
func deployThroughRefusal(t *testing.T, ns string, v2 app, refused string, fix func(), flags ...string) {
	t.Helper()
	wait := startRollguard(t, v2.yaml(), append([]string{"deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "2m"}, flags...)...)
	waitFailedCreate(t, ns, refused)
	fix()
	r := wait()
	if rep := parseReport(t, r); r.code != 0 || rep.Outcome != "succeeded" {
		t.Fatalf("exit %d, outcome %q; want 0 and succeeded (the refusal stopped)\n%s\n%s", r.code, rep.Outcome, r.stdout, r.stderr)
	}
	d, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != v2.image {
		t.Fatalf("deployment runs %s, want the new release %s (rolled back?)", img, v2.image)
	}
}

// raisePodQuota sets the namespace's "pods" quota (podQuota) to n.
func raisePodQuota(n int64) func(t *testing.T, ns string) {
	return func(t *testing.T, ns string) {
		ctx := context.Background()
		quotas := cluster.Client().CoreV1().ResourceQuotas(ns)
		q, err := quotas.Get(ctx, "pods", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		q.Spec.Hard[corev1.ResourcePods] = *resource.NewQuantity(n, resource.DecimalSI)
		if _, err := quotas.Update(ctx, q, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// cpuMax creates, or updates, the LimitRange "cpu" that caps a container's cpu at max.
func cpuMax(max string) func(t *testing.T, ns string) {
	return func(t *testing.T, ns string) {
		ctx := context.Background()
		lrs := cluster.Client().CoreV1().LimitRanges(ns)
		limits := []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer, Max: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(max)}}}
		lr, err := lrs.Get(ctx, "cpu", metav1.GetOptions{})
		if err != nil {
			lr = &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "cpu"}, Spec: corev1.LimitRangeSpec{Limits: limits}}
			_, err = lrs.Create(ctx, lr, metav1.CreateOptions{})
		} else {
			lr.Spec.Limits = limits
			_, err = lrs.Update(ctx, lr, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func serviceAccount(name string) func(t *testing.T, ns string) {
	return func(t *testing.T, ns string) {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if _, err := cluster.Client().CoreV1().ServiceAccounts(ns).Create(context.Background(), sa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}
