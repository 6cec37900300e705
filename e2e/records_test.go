package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/cmd/apply"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/rollguard/rollguard/internal/release"
)

// deployImage deploys the web app with one image and fails the test unless it is healthy.
func deployImage(t *testing.T, ns, tag string) {
	t.Helper()
	if r := rollguard(t, app{image: "registry.example.com/web:" + tag}.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m"); r.code != 0 {
		t.Fatalf("deploy %s: exit %d\n%s\n%s", tag, r.code, r.stdout, r.stderr)
	}
}

// TestRollbackOfOlderReleaseIsRefused (#18.1): rolling back a release that is not the current one would
// jump back past the newer releases; it is refused naming the current one, unless --skip-newer says so,
// and then the record names what was undone with it.
func TestRollbackOfOlderReleaseIsRefused(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	for _, tag := range []string{"7.0.0", "7.0.1", "7.0.2"} {
		deployImage(t, ns, tag)
	}
	r := rollguard(t, "", "rollback", "web.v2", "-n", ns, "--timeout", "2m")
	if r.code != 3 || !strings.Contains(r.stderr, "web.v3 is") || !strings.Contains(r.stderr, "--skip-newer") {
		t.Fatalf("rollback of web.v2 while web.v3 is current: exit %d, want 3 naming web.v3\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if img := templateImage(t, ns); img != "registry.example.com/web:7.0.2" {
		t.Fatalf("a refused rollback changed the workload: it runs %s", img)
	}
	if rec := record(t, ns, "web.v3"); rec.Outcome != release.Succeeded {
		t.Fatalf("web.v3 is %s after a refused rollback", rec.Outcome)
	}

	r = rollguard(t, "", "rollback", "web.v2", "-n", ns, "--skip-newer", "--timeout", "2m")
	if r.code != 0 {
		t.Fatalf("rollback --skip-newer: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if img := templateImage(t, ns); img != "registry.example.com/web:7.0.0" {
		t.Errorf("after rollback --skip-newer of web.v2 the workload runs %s, want 7.0.0", img)
	}
	if rec := record(t, ns, "web.v2"); rec.Outcome != release.RolledBack || strings.Join(rec.Skipped, ",") != "web.v3" {
		t.Errorf("web.v2 record: outcome %s, skipped %v; want rolled_back, skipped [web.v3]", rec.Outcome, rec.Skipped)
	}
	if !strings.Contains(r.stdout, "web.v3") {
		t.Errorf("the rollback's output does not say it undid web.v3:\n%s", r.stdout)
	}
}

// TestUnlockedRunIsSuperseded (#18.2): a slow deploy whose lock is removed with `rollguard unlock`, while
// another deploy takes over, must stop at once and say it was superseded — never claim success for a
// release that no longer runs.
func TestUnlockedRunIsSuperseded(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployImage(t, ns, "1.0.0")
	slow := app{image: "registry.example.com/web:2.1.0", scenario: "slow-ready", annotations: map[string]string{"sandbox.rollguard.dev/ready-after": "1h"}}.yaml()
	first := startRollguard(t, slow, "deploy", "-f", "-", "-n", ns, "--timeout", "10m", "-o", "json")
	id := waitForOutcome(t, ns, "web", release.Tracking)
	if u := rollguard(t, "", "unlock", "web", "-n", ns); u.code != 0 || strings.Contains(u.stdout+u.stderr, "not locked") {
		t.Fatalf("unlock: exit %d\n%s\n%s", u.code, u.stdout, u.stderr)
	}
	second := rollguard(t, app{image: "registry.example.com/web:2.0.0"}.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m", "--wait-for-lock", "1m")
	if second.code != 0 {
		t.Fatalf("second deploy: exit %d\n%s\n%s", second.code, second.stdout, second.stderr)
	}
	r := first()
	if r.code != 2 {
		t.Fatalf("superseded run: exit %d, want 2\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if rep := parseReport(t, r); rep.Outcome != "superseded" {
		t.Errorf("superseded run reports %q, want superseded\n%s", rep.Outcome, r.stdout)
	}
	if rec := record(t, ns, id); rec.Outcome != release.Superseded {
		t.Errorf("record %s is %s, want superseded (%s)", id, rec.Outcome, rec.Message)
	}
	if img := templateImage(t, ns); img != "registry.example.com/web:2.0.0" {
		t.Errorf("the workload runs %s, want the second deploy's 2.0.0", img)
	}
	h := rollguard(t, "", "history", "web", "-n", ns)
	if !strings.Contains(h.stdout, "superseded") {
		t.Errorf("history does not show %s superseded:\n%s", id, h.stdout)
	}
}

// kubectlApply runs kubectl's own client-side apply (the kubectl library, in process) on manifest.
func kubectlApply(t *testing.T, ns, manifest string) {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace = &cluster.Kubeconfig, &ns
	var out, errb bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errb}
	af := apply.NewApplyFlags(streams)
	cmd := &cobra.Command{Use: "apply"}
	af.AddFlags(cmd)
	if err := cmd.Flags().Set("filename", writeFile(t, "kubectl.yaml", manifest)); err != nil {
		t.Fatal(err)
	}
	o, err := af.ToOptions(cmdutil.NewFactory(flags), cmd, "kubectl", nil)
	if err == nil {
		err = o.Validate()
	}
	if err == nil {
		err = o.Run()
	}
	if err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, errb.String())
	}
}

// TestAdoptsKubectlApply (#18.3): a Deployment last written by `kubectl apply` (client-side) is taken
// over by rollguard's server-side apply, so a field removed from the manifest is removed from the cluster.
func TestAdoptsKubectlApply(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	withDebug := strings.Replace(app{}.yaml(), "        image: registry.example.com/web:1.0.0\n",
		"        image: registry.example.com/web:1.0.0\n        env:\n        - name: DEBUG\n          value: \"true\"\n", 1)
	if !strings.Contains(withDebug, "DEBUG") {
		t.Fatal("manifest without the env var")
	}
	kubectlApply(t, ns, withDebug)
	r := rollguard(t, app{image: "registry.example.com/web:1.0.1"}.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m")
	if r.code != 0 {
		t.Fatalf("deploy: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	d, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if env := d.Spec.Template.Spec.Containers[0].Env; len(env) != 0 {
		t.Errorf("env %v is still there after a deploy of a manifest without it", env)
	}
	if _, ok := d.Annotations["kubectl.kubernetes.io/last-applied-configuration"]; ok {
		t.Errorf("kubectl's last-applied annotation is still there; kubectl apply would now undo rollguard's changes")
	}
}

// TestChangedJobIsReplaced (#18.4): a migration Job whose template changed is replaced (the old one is
// recorded, and a rollback restores it), and no API error is a wall of Go structs.
func TestChangedJobIsReplaced(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	job := func(tag string, failing bool) string {
		return strings.Replace(migrationJob("migrate", failing), "web-migrate:1.0.0", "web-migrate:"+tag, 1)
	}
	if r := rollguard(t, job("1.0.0", false), "deploy", "-f", "-", "-n", ns, "--app", "web", "--timeout", "2m"); r.code != 0 {
		t.Fatalf("v1: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r := rollguard(t, job("1.1.0", false), "deploy", "-f", "-", "-n", ns, "--app", "web", "--timeout", "2m")
	if r.code != 0 {
		t.Fatalf("v2 with a changed Job: exit %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if img := jobImage(t, ns); img != "registry.example.com/web-migrate:1.1.0" {
		t.Errorf("Job runs %s, want 1.1.0", img)
	}
	r = rollguard(t, job("1.2.0", true), "deploy", "-f", "-", "-n", ns, "--app", "web", "--timeout", "2m")
	if r.code != 1 {
		t.Fatalf("v3 with a failing changed Job: exit %d, want 1 (rolled back)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if img := jobImage(t, ns); img != "registry.example.com/web-migrate:1.1.0" {
		t.Errorf("after the rollback the Job runs %s, want 1.1.0 restored", img)
	}
	// A change the API refuses for a kind rollguard does not replace is one readable line.
	if r := rollguard(t, app{}.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m"); r.code != 0 {
		t.Fatalf("web: exit %d\n%s", r.code, r.stderr)
	}
	bad := rollguard(t, strings.ReplaceAll(app{}.yaml(), "app: web", "app: web-2"), "deploy", "-f", "-", "-n", ns, "--timeout", "1m")
	if bad.code != 3 || strings.Count(strings.TrimSpace(bad.stderr), "\n") > 0 || len(bad.stderr) > 600 || !strings.Contains(bad.stderr, "immutable") {
		t.Errorf("immutable selector change: exit %d, want 3 with one readable line:\n%s", bad.code, bad.stderr)
	}
}

func jobImage(t *testing.T, ns string) string {
	t.Helper()
	j, err := cluster.Client().BatchV1().Jobs(ns).Get(context.Background(), "migrate", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return j.Spec.Template.Spec.Containers[0].Image
}

// killWhileTracking starts a deploy of a rollout that never becomes ready, with a lock that outlives it by
// ttl, and SIGKILLs it once it tracks: a run that died holding the app's lock.
func killWhileTracking(t *testing.T, ns, ttl string) {
	t.Helper()
	stuck := app{image: "registry.example.com/web:1.1.0", scenario: "slow-ready", annotations: map[string]string{"sandbox.rollguard.dev/ready-after": "1h"}}.yaml()
	cmd := exec.Command(binary, "deploy", "-f", "-", "-n", ns, "--timeout", "10m", "--lock-ttl", ttl)
	cmd.Env = []string{"KUBECONFIG=" + cluster.Kubeconfig, "HOME=" + t.TempDir()}
	cmd.Stdin = strings.NewReader(stuck)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForOutcome(t, ns, "web", release.Tracking)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}
