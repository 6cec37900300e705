package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rollguard/rollguard/internal/registry/registrytest"
)

// TestPruneKeepsWhatEnvironmentsNeed: a lifecycle policy that keeps only the newest image would expire
// every release image; rollguard keeps the one production runs, the one dev runs, and the one dev's last
// release would roll back to — recorded only in the release record once the ReplicaSet history is gone —
// and deletes only the image nothing needs. The kube context points elsewhere: the environments of
// rollguard.yaml are what count.
func TestPruneKeepsWhatEnvironmentsNeed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := registrytest.Start(t)
	repo := reg.Repo(t, "web")
	base := time.Now().Add(-time.Hour)
	for i, tag := range []string{"0.9.0", "1.0.0", "1.0.1", "1.0.2", "1.0.3"} {
		registrytest.Push(t, repo, registrytest.Image(t, base.Add(time.Duration(i)*time.Minute)), tag)
	}
	img := func(tag string) string { return reg.Host + "/web:" + tag }
	dev, prod := cluster.Namespace(t), cluster.Namespace(t)
	p := newEnvProject(t, img("1.0.0"), "", envYAML("dev", "sandbox", dev, "")+envYAML("production", "sandbox", prod, ""), "dev", "production")

	mustCode(t, p.run(t, "deploy", "--env", "production"), 0, "deploy production 1.0.0")
	mustCode(t, p.run(t, "deploy", "--env", "dev", "--image", "web="+img("1.0.1")), 0, "deploy dev 1.0.1")
	// Keep no old ReplicaSets in dev: after the next release, 1.0.1 survives only in its release record.
	deps := cluster.Client().AppsV1().Deployments(dev)
	d, err := deps.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	zero := int32(0)
	d.Spec.RevisionHistoryLimit = &zero
	if _, err := deps.Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	mustCode(t, p.run(t, "deploy", "--env", "dev", "--image", "web="+img("1.0.2")), 0, "deploy dev 1.0.2")
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		rss, err := cluster.Client().AppsV1().ReplicaSets(dev).List(ctx, metav1.ListOptions{})
		return err == nil && len(rss.Items) == 1, nil
	})
	if err != nil {
		t.Fatalf("dev's old ReplicaSet was not cleaned up: %v", err)
	}

	policy := filepath.Join(t.TempDir(), "policy.json")
	keepNewest := `{"rules":[{"rulePriority":1,"description":"keep the newest image","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`
	if err := os.WriteFile(policy, []byte(keepNewest), 0o644); err != nil {
		t.Fatal(err)
	}
	r := rollguard(t, "", "images", "prune", "--repository", reg.Host+"/web", "--policy", policy, "--config", p.config, "-n", "default", "-o", "json")
	mustCode(t, r, 0, "images prune")
	if !strings.Contains(r.stdout, "rollback target of release web.v2") {
		t.Errorf("1.0.1 is not shown as the rollback target of dev's release web.v2:\n%s", r.stdout)
	}
	tags, err := remote.List(repo)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tags)
	if want := []string{"1.0.0", "1.0.1", "1.0.2", "1.0.3"}; !slices.Equal(tags, want) {
		t.Errorf("tags left %v, want %v (only 0.9.0, which nothing needs, deleted)", tags, want)
	}
}
