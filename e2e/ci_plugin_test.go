package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/sandbox"
)

// TestKubectlPlugin: installed as kubectl-rollguard on PATH (what krew does), a real kubectl (the sandbox's
// version, built from the module proxy) finds the plugin and runs it, and the plugin's help names the
// command the user typed.
func TestKubectlPlugin(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	kubectl, err := sandbox.EnsureKubectl(ctx, sandbox.Options{Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	ns := cluster.Namespace(t)
	if r := rollguard(t, app{}.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m"); r.code != 0 {
		t.Fatalf("deploy: exit %d\n%s", r.code, r.stderr)
	}
	bin := t.TempDir()
	if err := os.Symlink(binary, filepath.Join(bin, "kubectl-rollguard")); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) {
		cmd := exec.CommandContext(ctx, kubectl, args...)
		cmd.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "KUBECONFIG=" + cluster.Kubeconfig}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("kubectl %v: %v", args, err)
		}
		return string(out), code
	}
	if out, code := run("plugin", "list"); code != 0 || !strings.Contains(out, "kubectl-rollguard") {
		t.Errorf("kubectl plugin list: exit %d\n%s", code, out)
	}
	out, code := run("rollguard", "status", "deploy/web", "-n", ns, "--timeout", "1m")
	if code != 0 || !strings.Contains(out, "web") {
		t.Fatalf("kubectl rollguard status deploy/web: exit %d, want 0\n%s", code, out)
	}
	out, _ = run("rollguard", "status", "--help")
	if !strings.Contains(out, "kubectl rollguard status TYPE/NAME") {
		t.Errorf("help does not name the plugin command:\n%s", out)
	}
	out, code = run("rollguard", "frobnicate")
	if code != 3 || !strings.Contains(out, "see kubectl rollguard --help") {
		t.Errorf("a typo: exit %d, want 3 with a hint naming kubectl rollguard\n%s", code, out)
	}
}
