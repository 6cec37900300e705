package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/registry/ecrtest"
)

// The images commands on the ECR path, from flags to exit code, against the ECR protocol test double (no
// cluster: --in-use-from-cluster=false; the sandbox e2e tests cover the cluster's protections).
func TestImagesCommandsOnECR(t *testing.T) {
	srv := ecrtest.Start(t)
	srv.Env(t)
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	srv.CreateRepository("web")
	now := time.Now()
	srv.Push("web", now.Add(-3*time.Hour), "1.0.0")
	srv.Push("web", now.Add(-2*time.Hour), "1.0.1")
	srv.Push("web", now.Add(-time.Hour), "1.0.2")
	repo := srv.Host() + "/web"
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keep1 := write("keep1.json", `{"rules":[{"rulePriority":1,"description":"keep the newest","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`)
	bad := write("bad.json", `{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan"},"action":{"type":"expire"}}]}`)
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		cmd := newRootCmd(&out, &errb)
		cmd.SetArgs(args)
		err := cmd.ExecuteContext(context.Background())
		if err != nil {
			errb.WriteString("Error: " + err.Error() + "\n")
		}
		return exitcode.Of(err), out.String(), errb.String()
	}

	code, out, _ := run("images", "previous", repo)
	if code != 0 || strings.TrimSpace(out) != "1.0.1" {
		t.Errorf("images previous: exit %d, %q", code, out)
	}
	code, _, stderr := run("images", "policy", "diff", "--repository", repo, "--policy", bad, "--in-use-from-cluster=false")
	if code != exitcode.BadInput || !strings.Contains(stderr, "countNumber") {
		t.Errorf("bad policy: exit %d, %s", code, stderr)
	}
	code, out, _ = run("images", "policy", "diff", "--repository", repo, "--policy", keep1, "--in-use-from-cluster=false", "--protect", "1.0.1")
	for _, want := range []string{"arn:aws:ecr:eu-west-1:123456789012:repository/web", "no lifecycle policy on ECR yet", "+ rule 1:",
		"WARNING: this policy lets ECR expire 1 image(s) rollguard protects", "1.0.1 ("} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("policy diff: exit %d, output lacks %q:\n%s", code, want, out)
		}
	}
	code, _, stderr = run("images", "policy", "apply", "--repository", repo, "--policy", keep1, "--in-use-from-cluster=false", "--protect", "1.0.1")
	if code != exitcode.BadInput || srv.Policy("web") != "" || !strings.Contains(stderr, "--allow-expiring-protected") {
		t.Errorf("apply over a protected image: exit %d, policy %q, %s", code, srv.Policy("web"), stderr)
	}
	code, out, _ = run("images", "prune", "--repository", repo, "--policy", keep1, "--in-use-from-cluster=false", "--protect", "1.0.1")
	if code != 0 || !strings.Contains(out, "deleted 1 image(s)") || len(srv.Images("web")) != 2 {
		t.Errorf("prune: exit %d, %d images left:\n%s", code, len(srv.Images("web")), out)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDREFUSED")
	code, _, stderr = run("images", "prune", "--repository", repo, "--policy", keep1, "--in-use-from-cluster=false")
	if code != exitcode.Unreachable || !strings.Contains(stderr, "AWS refused our credentials") {
		t.Errorf("refused credentials: exit %d, %s", code, stderr)
	}
	t.Setenv("AWS_ENDPOINT_URL_ECR", "http://127.0.0.1:1")
	code, _, stderr = run("images", "policy", "show", "--repository", repo, "--in-use-from-cluster=false")
	if code != exitcode.Unreachable || !strings.Contains(stderr, "cannot reach ECR") {
		t.Errorf("unreachable endpoint: exit %d, %s", code, stderr)
	}
}
