package e2e

// Unschedulable pods on a cluster that can grow: the sandbox's autoscaler stand-in (sandbox.StartAutoscaler:
// cluster-autoscaler's status ConfigMap, TriggeredScaleUp / NotTriggerScaleUp events and new kwok nodes)
// runs on a sandbox of its own, since its status ConfigMap tells every rollguard run on that cluster
// that it can grow.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollguard/rollguard/sandbox"
)

var (
	growOnce    sync.Once
	growCluster *sandbox.Cluster
	growStop    func() error
	growErr     error
)

// growingCluster returns the package's sandbox with an autoscaler: one 4-CPU kwok node, and a node group of
// 8-CPU nodes the autoscaler adds 3 s after it says TriggeredScaleUp.
func growingCluster(t *testing.T) *sandbox.Cluster {
	t.Helper()
	growOnce.Do(func() {
		growCluster, growErr = sandbox.Start(context.Background(), sandbox.Options{Nodes: 1, Progress: os.Stderr})
		if growErr == nil {
			growStop, growErr = growCluster.StartAutoscaler(context.Background(), sandbox.AutoscalerOptions{
				Group: "pool", CPU: "8", Memory: "16Gi", Max: 4, ProvisionDelay: 3 * time.Second})
		}
	})
	if growErr != nil {
		t.Fatal(growErr)
	}
	return growCluster
}

func stopGrowingCluster() {
	if growStop != nil {
		if err := growStop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if growCluster != nil {
		if err := growCluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}

// TestUnschedulableOnAGrowingCluster: a release whose pods no node fits is not failed while the autoscaler
// adds a node for them (TriggeredScaleUp, then the pods are scheduled: healthy, not rolled back), and fails
// as soon as the autoscaler says no node group would fit them (NotTriggerScaleUp), naming that.
func TestUnschedulableOnAGrowingCluster(t *testing.T) {
	gc := growingCluster(t)
	env := []string{"KUBECONFIG=" + gc.Kubeconfig}
	deploy := func(t *testing.T, ns string, a app) result {
		t.Helper()
		return rollguardEnv(t, env, a.yaml(), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "3m")
	}
	withV1 := func(t *testing.T) string {
		t.Helper()
		ns := gc.Namespace(t)
		if r := deploy(t, ns, app{replicas: 2, cpu: "100m"}); r.code != 0 {
			t.Fatalf("v1: exit %d\n%s", r.code, r.stderr)
		}
		return ns
	}
	t.Run("scale-up then scheduled", func(t *testing.T) {
		t.Parallel()
		ns := withV1(t)
		// 6 CPUs: more than the 4-CPU node has, less than a node of the group.
		r := deploy(t, ns, app{replicas: 2, image: "registry.example.com/web:2.0.0", cpu: "6"})
		rep := parseReport(t, r)
		if r.code != 0 || rep.Outcome != "succeeded" {
			t.Fatalf("exit %d outcome %q, want 0 succeeded: a pod the autoscaler adds a node for is not failed\n%s\n%s", r.code, rep.Outcome, r.stdout, r.stderr)
		}
		evs, err := gc.Client().CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=TriggeredScaleUp"})
		if err != nil || len(evs.Items) == 0 {
			t.Fatalf("no TriggeredScaleUp event in %s (%v): the release never looked unschedulable", ns, err)
		}
		d, err := gc.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil || d.Spec.Template.Spec.Containers[0].Image != "registry.example.com/web:2.0.0" || d.Status.ReadyReplicas != 2 {
			t.Errorf("deployment %v: want v2 with 2 ready replicas (not rolled back)", err)
		}
	})
	t.Run("no node group fits", func(t *testing.T) {
		t.Parallel()
		ns := withV1(t)
		r := deploy(t, ns, app{replicas: 2, image: "registry.example.com/web:2.0.0", cpu: "64"})
		rep := wantFailure(t, r, 1, "Unschedulable", "will not add a node", "NotTriggerScaleUp")
		if rep.Outcome != "rolled_back" {
			t.Errorf("outcome %q, want rolled_back", rep.Outcome)
		}
		if w := rep.Workloads[0]; !strings.Contains(w.Message, "Insufficient cpu") {
			t.Errorf("message %q does not say what no node has", w.Message)
		}
	})
}
