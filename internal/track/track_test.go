package track_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/revision"
	"github.com/rollguard/rollguard/internal/track"
	"github.com/rollguard/rollguard/sandbox"
)

var cluster *sandbox.Cluster

func TestMain(m *testing.M) { sandbox.Main(m, sandbox.Options{}, &cluster) }

// countingClient connects to the sandbox through a transport that counts watch requests.
func countingClient(t *testing.T, ns string, watches *atomic.Int64) *kube.Client {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace = &cluster.Kubeconfig, &ns
	flags.WrapConfigFn = func(c *rest.Config) *rest.Config {
		c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.URL.Query().Get("watch") == "true" {
					watches.Add(1)
				}
				return rt.RoundTrip(r)
			})
		})
		return c
	}
	c, err := kube.Connect(context.Background(), flags)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestWatchesDoNotGrowWithWorkloads: tracking 50 Deployments opens no more watches than tracking 5 — one per
// informer of the namespace (seven) — instead of a set per workload.
func TestWatchesDoNotGrowWithWorkloads(t *testing.T) {
	counts := map[int]int64{}
	for _, n := range []int{5, 50} {
		ns := cluster.Namespace(t)
		targets := createDeployments(t, ns, n)
		var watches atomic.Int64
		c := countingClient(t, ns, &watches)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		st, err := track.Track(ctx, c, targets, track.Options{Thresholds: diagnose.DefaultThresholds(), Deadline: time.Now().Add(3 * time.Minute)})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.Verdict.Status != diagnose.Healthy {
				t.Fatalf("%s: %s %s", s.Target, s.Verdict.Status, s.Verdict.Message)
			}
		}
		counts[n] = watches.Load()
	}
	t.Logf("watch requests: %d for 5 workloads, %d for 50", counts[5], counts[50])
	if counts[5] == 0 || counts[50] != counts[5] {
		t.Errorf("watch requests: %d for 5 workloads, %d for 50; want the same non-zero number", counts[5], counts[50])
	}
	if counts[50] > 7 {
		t.Errorf("%d watch requests for one namespace, want at most 7 (one per informer)", counts[50])
	}
}

func createDeployments(t *testing.T, ns string, n int) []track.Target {
	t.Helper()
	var targets []track.Target
	one := int32(1)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("web-%02d", i)
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.DeploymentSpec{
				Replicas: &one,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example.com/web:1.0.0"}}},
				},
			},
		}
		if _, err := cluster.Client().AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		targets = append(targets, track.Target{Kind: "Deployment", Namespace: ns, Name: name})
	}
	return targets
}

// Only the built-in workloads are followed as such: a custom resource named Deployment is followed (if at
// all) as a custom resource.
func TestTrackableIsGroupAware(t *testing.T) {
	for gk, want := range map[schema.GroupKind]bool{
		{Group: "apps", Kind: "Deployment"}: true, {Group: "apps", Kind: "StatefulSet"}: true,
		{Group: "apps", Kind: "DaemonSet"}: true, {Group: "batch", Kind: "Job"}: true,
		{Group: "example.com", Kind: "Deployment"}: false, {Group: "example.com", Kind: "Job"}: false,
		{Kind: "Deployment"}: false, {Group: "batch", Kind: "CronJob"}: false, {Group: "apps", Kind: "ReplicaSet"}: false,
	} {
		if got := track.Trackable(gk); got != want {
			t.Errorf("Trackable(%s) = %v, want %v", gk, got, want)
		}
	}
}

// TestWaitEndsWhenDue: a rule's wait (here ConfigError's grace for a ConfigMap that never comes) is judged
// again when it ends, whatever the tick: with a tick of an hour and nothing in the namespace changing after
// the kubelet's first report, tracking still ends with the failure, naming the revision that failed.
func TestWaitEndsWhenDue(t *testing.T) {
	ns := cluster.Namespace(t)
	targets := createDeployments(t, ns, 1)
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"labels":{%q:%q}}}}}`, sandbox.ScenarioLabel, sandbox.ScenarioConfigError)
	started := time.Now()
	if _, err := cluster.Client().AppsV1().Deployments(ns).Patch(context.Background(), targets[0].Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := countingClient(t, ns, new(atomic.Int64))
	st, err := track.Track(ctx, c, targets, track.Options{Thresholds: diagnose.DefaultThresholds(), Started: started, Tick: time.Hour})
	if err != nil {
		t.Fatalf("tracking ended with %v, not with the failure", err)
	}
	if v := st[0].Verdict; v.Status != diagnose.Failed || v.Reason != diagnose.ConfigError {
		t.Fatalf("%s %s: %s; want failed ConfigError", v.Status, v.Reason, v.Message)
	}
	// The revision the caches showed with the verdict is the one the API says the Deployment runs.
	n, hash, err := revision.Current(context.Background(), c, "Deployment", ns, targets[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	if got := st[0].Revision; got.Number != n || got.Hash != hash || n != 2 {
		t.Errorf("tracked revision %d %q, the API says %d %q; want revision 2", got.Number, got.Hash, n, hash)
	}
}
