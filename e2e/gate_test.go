package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/rollguard/rollguard/internal/registry/registrytest"
)

// TestPromotionGateAsksDiagnose: the promotion gate judges the source with the diagnosis core, as a deploy
// does. A source whose release succeeded is refused once its migration Job failed (the gate used to count
// every Job healthy), and while its Deployment is still rolling out (diagnose: progressing).
func TestPromotionGateAsksDiagnose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := registrytest.Start(t)
	registrytest.Push(t, reg.Repo(t, "web"), registrytest.Image(t, time.Now()), "1.0.0")
	registrytest.Push(t, reg.Repo(t, "web-migrate"), registrytest.Image(t, time.Now()), "1.0.0")
	image, migrate := reg.Host+"/web:1.0.0", reg.Host+"/web-migrate:1.0.0"
	dev, staging := cluster.Namespace(t), cluster.Namespace(t)
	p := newEnvProject(t, image, "", envYAML("dev", "sandbox", dev, "")+envYAML("staging", "sandbox", staging, ""), "dev", "staging")
	job := strings.ReplaceAll(migrationJob("migrate", false), "registry.example.com/web-migrate:1.0.0", migrate)
	if err := os.WriteFile(filepath.Join(p.dir, "k8s", "migrate.yaml"), []byte(job), 0o644); err != nil {
		t.Fatal(err)
	}
	c := cluster.Client()
	mustCode(t, p.run(t, "deploy", "--env", "dev"), 0, "deploy --env dev")

	// The migration is run again by hand and fails: dev's release is still "succeeded".
	jobs := c.BatchV1().Jobs(dev)
	background := metav1.DeletePropagationBackground
	if err := jobs.Delete(ctx, "migrate", metav1.DeleteOptions{PropagationPolicy: &background}); err != nil {
		t.Fatal(err)
	}
	var failing batchv1.Job
	if err := yaml.Unmarshal([]byte(strings.ReplaceAll(migrationJob("migrate", true), "registry.example.com/web-migrate:1.0.0", migrate)), &failing); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := jobs.Create(ctx, &failing, metav1.CreateOptions{})
		return err == nil, nil // the deleted Job may still be finalizing
	})
	if err != nil {
		t.Fatalf("recreating the Job: %v", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		j, err := jobs.Get(ctx, "migrate", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range j.Status.Conditions {
			if cond.Type == batchv1.JobFailed && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("the Job never failed: %v", err)
	}
	r := p.run(t, "promote", "--from", "dev", "--to", "staging")
	mustCode(t, r, 3, "promote from a dev whose Job failed")
	if !strings.Contains(r.stderr, "Job/migrate is not healthy now") || !strings.Contains(r.stderr, "JobFailed") {
		t.Errorf("refusal does not name the failed Job: %s", r.stderr)
	}
	if _, err := c.AppsV1().Deployments(staging).Get(ctx, "web", metav1.GetOptions{}); err == nil {
		t.Error("a refused promotion created the staging Deployment")
	}

	// The Job is fixed; the Deployment starts a rollout whose pods take ten minutes to get ready.
	if err := jobs.Delete(ctx, "migrate", metav1.DeleteOptions{PropagationPolicy: &background}); err != nil {
		t.Fatal(err)
	}
	p.removeJob(t)
	mustCode(t, p.run(t, "deploy", "--env", "dev"), 0, "deploy --env dev without the Job")
	patch := `{"spec":{"template":{"metadata":{"labels":{"sandbox.rollguard.dev/scenario":"slow-ready"},"annotations":{"sandbox.rollguard.dev/ready-after":"10m"}}}}}`
	if _, err := c.AppsV1().Deployments(dev).Patch(ctx, "web", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	r = p.run(t, "promote", "--from", "dev", "--to", "staging")
	mustCode(t, r, 3, "promote from a dev still rolling out")
	if !strings.Contains(r.stderr, "Deployment/web is not healthy now (still rolling out") {
		t.Errorf("refusal does not say the source is still rolling out: %s", r.stderr)
	}
}

// removeJob takes the migration Job out of the project's manifests.
func (p *envProject) removeJob(t *testing.T) {
	t.Helper()
	if err := os.Remove(filepath.Join(p.dir, "k8s", "migrate.yaml")); err != nil {
		t.Fatal(err)
	}
}
