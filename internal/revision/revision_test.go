package revision_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/util/retry"

	"github.com/rollguard/rollguard/internal/history"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/revision"
	"github.com/rollguard/rollguard/sandbox"
)

// The revisions Read finds are the ones the Deployment controller really made, including the renumbering a
// rollback causes, and a history merges release records with them.
func TestRevisionsOfDeployment(t *testing.T) {
	ctx := context.Background()
	c, ns := connect(t)
	deployments := c.Typed.AppsV1().Deployments(ns)
	store := release.NewStore(c)

	setImage := func(image string) (rev int64, hash string) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			d, err := deployments.Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			d.Spec.Template.Spec.Containers[0].Image = image
			_, err = deployments.Update(ctx, d, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		rev, hash = waitRevision(t, c, ns, image)
		if r, h, err := revision.Current(ctx, c, "Deployment", ns, "web"); err != nil || r != rev || h != hash {
			t.Fatalf("Current = %d, %q, %v; want %d, %q", r, h, err, rev, hash)
		}
		return rev, hash
	}
	replicas := int32(1)
	labels := map[string]string{"app": "web"}
	_, err := deployments.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{"kubernetes.io/change-cause": "first by hand"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:0"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitRevision(t, c, ns, "web:0")

	// web.v1 (web:1) succeeds; web.v2 (web:2) fails and is rolled back to web:1.
	r1 := &release.Record{App: "web", Namespace: ns, Outcome: release.Tracking, DeployedBy: "alice"}
	if err := store.Create(ctx, r1); err != nil {
		t.Fatal(err)
	}
	rev1, hash1 := setImage("web:1")
	r1.Workloads = []release.WorkloadState{{Kind: "Deployment", Name: "web", Images: []string{"web:1"}, PreviousRevision: 1, NewRevision: rev1, NewTemplateHash: hash1}}
	r1.Outcome = release.Succeeded
	if err := store.Update(ctx, r1); err != nil {
		t.Fatal(err)
	}
	r2 := &release.Record{App: "web", Namespace: ns, Outcome: release.Tracking, DeployedBy: "bob"}
	if err := store.Create(ctx, r2); err != nil {
		t.Fatal(err)
	}
	rev2, hash2 := setImage("web:2")
	r2.Workloads = []release.WorkloadState{{Kind: "Deployment", Name: "web", Images: []string{"web:2"}, PreviousRevision: rev1, PreviousTemplateHash: hash1, NewRevision: rev2, NewTemplateHash: hash2}}
	r2.Outcome, r2.Reason = release.RollingBack, "ImagePullFailed"
	r2.Timings.RollbackStartedAt = time.Now().UTC()
	if err := store.Update(ctx, r2); err != nil {
		t.Fatal(err)
	}
	rev3, hash3 := setImage("web:1")
	if hash3 != hash1 || rev3 != 4 {
		t.Fatalf("the rollback made revision %d (%s); want the old ReplicaSet %s renumbered 4", rev3, hash3, hash1)
	}
	r2.Outcome = release.RolledBack
	if err := store.Update(ctx, r2); err != nil {
		t.Fatal(err)
	}

	revs, err := revision.Read(ctx, c, "Deployment", ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	if revs.Current != 4 || revs.CurrentHash != hash1 {
		t.Errorf("current revision %d (%s), want 4 (%s)", revs.Current, revs.CurrentHash, hash1)
	}
	if r, ok := revs.WasNumbered(rev1); !ok || r.Number != 4 {
		t.Errorf("revision %d after the rollback: %+v, %v; want it renumbered 4", rev1, r, ok)
	}
	if r, ok := revs.Before(nil); !ok || r.Number != rev2 || r.Hash != hash2 {
		t.Errorf("the revision before the current one is %+v, want %d (%s)", r, rev2, hash2)
	}
	records, err := store.List(ctx, ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	res := history.Workload(ns, "Deployment", "web", revs.Current, revs.Revisions, records)
	var text strings.Builder
	if err := report.HistoryText(&text, res); err != nil {
		t.Fatal(err)
	}
	type row struct {
		rev     int64
		release string
		image   string
		current bool
	}
	want := []row{{4, "", "web:1", true}, {3, "web.v2", "web:2", false}, {2, "web.v1", "web:1", false}, {1, "", "web:0", false}}
	if len(res.Entries) != len(want) {
		t.Fatalf("%d entries, want %d:\n%s", len(res.Entries), len(want), text.String())
	}
	for i, w := range want {
		e := res.Entries[i]
		if got := (row{e.Revision, e.Release, strings.Join(e.Images, ","), e.Current}); got != w {
			t.Errorf("entry %d = %+v, want %+v\n%s", i, got, w, text.String())
		}
	}
	if e := res.Entries[0]; e.RollbackOf != "web.v2" || e.DeployedBy != "bob" {
		t.Errorf("revision 4 is not shown as web.v2's rollback: %+v\n%s", e, text.String())
	}
	if e := res.Entries[1]; e.Outcome != release.RolledBack || e.RolledBackTo != "web.v1" {
		t.Errorf("web.v2: outcome %s rolled back to %q\n%s", e.Outcome, e.RolledBackTo, text.String())
	}
	if e := res.Entries[2]; len(e.RollbackTarget) != 1 || e.DeployedBy != "alice" {
		t.Errorf("web.v1 is not marked as the rollback target: %+v\n%s", e, text.String())
	}
	if e := res.Entries[3]; e.ChangeCause != "first by hand" || e.Time.IsZero() {
		t.Errorf("the revision made by hand lost its change cause or time: %+v", e)
	}
	for _, s := range []string{"rolled back: ImagePullFailed → web.v1", "succeeded, rollback target", "rollback of web.v2", "4 (current)"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text history lacks %q:\n%s", s, text.String())
		}
	}
	if gone, err := revision.Read(ctx, c, "Deployment", ns, "nothing"); gone != nil || err != nil {
		t.Errorf("Read of a missing Deployment = %+v, %v; want nil, nil", gone, err)
	}
}

// waitRevision waits until the Deployment runs image and returns its revision and pod-template-hash.
func waitRevision(t *testing.T, c *kube.Client, ns, image string) (int64, string) {
	t.Helper()
	var rev int64
	var hash string
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := c.Typed.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		d, err := c.Typed.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, rs := range list.Items {
			if rs.Spec.Template.Spec.Containers[0].Image == image && rs.Annotations["deployment.kubernetes.io/revision"] == d.Annotations["deployment.kubernetes.io/revision"] {
				rev, _ = strconv.ParseInt(d.Annotations["deployment.kubernetes.io/revision"], 10, 64)
				hash = rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("the Deployment never rolled out %s: %v", image, err)
	}
	return rev, hash
}

// The sandbox starts with the first test that needs it, so the pure tests of this package start no
// control plane.
var (
	sandboxOnce sync.Once
	cluster     *sandbox.Cluster
	sandboxErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		cluster.Stop()
	}
	os.Exit(code)
}

// connect is a kube.Client for the sandbox, built the way the CLI builds one, in a namespace of the test's.
func connect(t *testing.T) (*kube.Client, string) {
	t.Helper()
	sandboxOnce.Do(func() {
		cluster, sandboxErr = sandbox.Start(context.Background(), sandbox.Options{Progress: os.Stderr})
	})
	if sandboxErr != nil {
		t.Fatalf("starting the sandbox: %v", sandboxErr)
	}
	namespace := cluster.Namespace(t)
	flags := genericclioptions.NewConfigFlags(true)
	flags.KubeConfig = &cluster.Kubeconfig
	flags.Namespace = &namespace
	c, err := kube.Connect(context.Background(), flags)
	if err != nil {
		t.Fatalf("connecting to the sandbox: %v", err)
	}
	return c, namespace
}
