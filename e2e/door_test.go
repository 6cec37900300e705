package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/internal/release"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestForbiddenIsBadInputEverywhere runs commands as an identity the cluster knows but has granted
// nothing: every command that reads the cluster must say "forbidden" and exit 3 (a permission to grant,
// as kube.Classify decides), never 4 (unreachable). images prune used to classify it as 4 on its own.
func TestForbiddenIsBadInputEverywhere(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	kubeconfig := serviceAccountKubeconfig(t, ns, "nobody")
	policy := writeFile(t, "policy.json", `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":100},"action":{"type":"expire"}}]}`)
	for _, args := range [][]string{
		{"images", "prune", "--repository", "127.0.0.1:1/acme/web", "--policy", policy, "--dry-run"},
		{"status", "deployment/web"},
		{"history", "--app", "web"},
		{"undo", "deployment/web"},
		{"rollback", "--last", "--app", "web"},
		{"unlock", "web"},
	} {
		r := rollguardEnv(t, []string{"KUBECONFIG=" + kubeconfig}, "", append(args, "-n", ns)...)
		if r.code != 3 || !strings.Contains(r.stderr, "forbidden") {
			t.Errorf("%v as an identity without permissions: exit %d, want 3 naming the refusal\n%s", args, r.code, r.stderr)
		}
	}
}

// TestInterruptIsNotUnreachable interrupts a deploy (Ctrl-C) while it tracks a rollout: the cluster was
// reachable all along, so the run must not exit 4 or say it cannot reach the cluster.
func TestInterruptIsNotUnreachable(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	cmd := exec.Command(binary, "deploy", "-f", "-", "-n", ns, "--timeout", "3m")
	cmd.Env = []string{"KUBECONFIG=" + cluster.Kubeconfig, "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(slowApp("web", "registry.example.com/web:1.0.0", "10m"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waitForOutcome(t, ns, "web", release.Tracking)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("interrupted deploy: %v, want a failing exit", err)
	}
	if code := exitErr.ExitCode(); code == 4 || code == 0 || strings.Contains(stderr.String(), "cannot reach") {
		t.Errorf("interrupted deploy: exit %d, want neither success nor 4 (unreachable)\n%s", code, stderr.String())
	}
}

// TestInterruptDuringARequestIsNotUnreachable interrupts a deploy (Ctrl-C) while one of its requests is in
// flight — the server-side dry-run waits on an admission webhook that answers nothing — so the cancelled
// request's error reaches kube.Classify: it must not be taken for an unreachable cluster (exit 4).
func TestInterruptDuringARequestIsNotUnreachable(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	arrived := silentWebhook(t, ns, "deployments")
	cmd := exec.Command(binary, "deploy", "-f", "-", "-n", ns, "--timeout", "3m")
	cmd.Env = []string{"KUBECONFIG=" + cluster.Kubeconfig, "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(app{image: "registry.example.com/web:1.0.0"}.yaml())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case <-arrived:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the deploy never asked the webhook\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("interrupted deploy: %v, want a failing exit\n%s", err, stderr.String())
	}
	if code := exitErr.ExitCode(); code == 4 || strings.Contains(stderr.String(), "cannot reach") {
		t.Errorf("deploy interrupted mid-request: exit %d, want anything but 4 (unreachable)\n%s", code, stderr.String())
	}
	if _, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{}); err == nil {
		t.Error("the interrupted deploy applied the Deployment")
	}
}
