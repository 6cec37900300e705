package e2e

// Healthy-but-bumpy releases on the real node: they look like failures for a while and must be reported
// healthy, with nothing rolled back.

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/rollguard/rollguard/sandbox"
)

// wantHealthyNoRollback checks a bumpy release was reported healthy and nothing was rolled back.
func wantHealthyNoRollback(t *testing.T, rc *sandbox.Cluster, ns string, r result, image string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, want 0 (healthy)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var rep struct {
		Outcome   string          `json:"outcome"`
		Rollback  *map[string]any `json:"rollback"`
		Workloads []struct {
			Status string `json:"status"`
		} `json:"workloads"`
	}
	if err := jsonUnmarshal(r.stdout, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != "succeeded" || rep.Rollback != nil || len(rep.Workloads) != 1 || rep.Workloads[0].Status != "healthy" {
		t.Fatalf("report: outcome %q, rollback %v, workloads %+v; want succeeded, none, one healthy\n%s", rep.Outcome, rep.Rollback, rep.Workloads, r.stdout)
	}
	d, err := rc.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != image || d.Status.ReadyReplicas != 2 {
		t.Errorf("deployment runs %s with %d ready; want %s with 2 (not rolled back)", got, d.Status.ReadyReplicas, image)
	}
}

// TestRealNodeRegistryBlip: the registry is down when the new release's pods pull (real "connection
// refused" errors) and back seconds later; the kubelet's retry pulls the image. That is a healthy release:
// rollguard must not fail it or roll it back. Not parallel: it stops the registry every test pulls from.
func TestRealNodeRegistryBlip(t *testing.T) {
	rc := realNode(t)
	ns := rc.Namespace(t)
	realV1(t, rc, ns)
	// A tag of this run's own: the node does not pull again an image it pulled before (-count=2 did).
	img := pushApp(t, rc, ns+"-v2")
	if err := rc.StopRegistry(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			_ = rc.StartRegistry(context.Background())
		}
	}()
	wait := startRollguardEnv(t, []string{"KUBECONFIG=" + rc.Kubeconfig}, realApp{image: img, probe: 3}.yaml(t),
		"deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "3m")
	waitPullError(t, rc, ns, "connection refused")
	if err := rc.StartRegistry(context.Background()); err != nil {
		t.Fatal(err)
	}
	restarted = true
	wantHealthyNoRollback(t, rc, ns, wait(), img)
}

// TestRealNodeSlowStarter: the app takes 20 s to become ready, longer than its probe's own budget, and so
// did the release before it. A release that starts as slowly as the last one is healthy, not failed.
func TestRealNodeSlowStarter(t *testing.T) {
	rc := realNode(t)
	t.Parallel()
	ns := rc.Namespace(t)
	slow := map[string]string{"READY_AFTER": "20s"}
	// v1 is applied without rollguard (it is the history), and waited for.
	v1 := realApp{image: pushApp(t, rc, "v1"), probe: 3, env: slow}
	var d appsv1.Deployment
	if err := yaml.Unmarshal([]byte(v1.yaml(t)), &d); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := rc.Client().AppsV1().Deployments(ns).Create(ctx, &d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := rc.Client().AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && got.Status.UpdatedReplicas == 2 && got.Status.ReadyReplicas == 2, nil
	})
	if err != nil {
		t.Fatalf("v1 never became ready: %v", err)
	}
	img := pushApp(t, rc, "v2")
	r := realDeploy(t, rc, ns, realApp{image: img, probe: 3, env: slow}.yaml(t))
	wantHealthyNoRollback(t, rc, ns, r, img)
}

// TestRealNodeRestartOnce: the app exits once a second after its first start (a dependency not up yet)
// and runs fine after the kubelet restarts it. One early restart is not a crash loop.
func TestRealNodeRestartOnce(t *testing.T) {
	rc := realNode(t)
	t.Parallel()
	ns := rc.Namespace(t)
	realV1(t, rc, ns)
	img := pushApp(t, rc, "v2")
	r := realDeploy(t, rc, ns, realApp{image: img, probe: 3, env: map[string]string{"CRASH_ONCE": "/state/crashed", "READY_AFTER": "2s"}, state: true}.yaml(t))
	wantHealthyNoRollback(t, rc, ns, r, img)
	pods, err := rc.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	restarted := 0
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Image == img && cs.RestartCount == 1 {
				restarted++
			}
		}
	}
	if restarted == 0 {
		t.Errorf("no pod of %s restarted once: the release never looked like a crash", img)
	}
}

// TestRealNodeLateConfig: ConfigError's counter-scenario. The release reads a ConfigMap key that a sibling
// step adds a moment after the apply (an operator, a later pipeline step): the real kubelet fails the
// container (CreateContainerConfigError) and creates it at its next retry, 10 to 15 s later. rollguard sees
// the key is there now and waits for that retry instead of rolling back. TestRealNodeFailures' "missing
// ConfigMap key", which nobody adds, still fails. The test adds the key once it sees the pod's status say
// it is missing, which a loaded kubelet writes seconds late: --config-grace gives it that time (the default,
// 3 s from the kubelet's first failure, is for a step that runs with the apply; TestPrecisionVariations
// has both sides of it).
func TestRealNodeLateConfig(t *testing.T) {
	rc := realNode(t)
	t.Parallel()
	ns := rc.Namespace(t)
	realV1(t, rc, ns)
	img := pushApp(t, rc, "v2")
	key := &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}, Key: "database-url"}
	wait := startRollguardEnv(t, []string{"KUBECONFIG=" + rc.Kubeconfig}, realApp{image: img, probe: 3, envFrom: key}.yaml(t),
		"deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "3m", "--config-grace", "10s")
	waitPullError(t, rc, ns, "couldn't find key database-url")
	ctx := context.Background()
	cms := rc.Client().CoreV1().ConfigMaps(ns)
	cm, err := cms.Get(ctx, "web-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["database-url"] = "postgres://db:5432/web"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantHealthyNoRollback(t, rc, ns, wait(), img)
}

// waitPullError waits until a container of ns waits with a message containing msg (a pull or config error).
func waitPullError(t *testing.T, rc *sandbox.Cluster, ns, msg string) {
	t.Helper()
	var seen string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := rc.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, p := range pods.Items {
			for _, cs := range p.Status.ContainerStatuses {
				if w := cs.State.Waiting; w != nil && strings.Contains(w.Message, msg) {
					return true, nil
				} else if w != nil {
					seen = w.Reason + ": " + w.Message
				}
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no pull error %q in %s (last seen %q)", msg, ns, seen)
	}
}
