package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollguard/rollguard/internal/release"
)

// TestSecretValuesNeverWritten deploys a Secret holding canary values through every path that writes
// something (healthy deploy, failed deploy rolled back, held then rolled back by a later step, approval
// timeout, history, status), with debug logs, JSON, JUnit and Markdown on; then scans everything rollguard
// wrote, and every object it could have written in the cluster except the Secret itself and the release
// records (which must hold the previous Secret to restore it), for the canaries, plain or base64.
func TestSecretValuesNeverWritten(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	dir := t.TempDir()
	junit := filepath.Join(dir, "junit.xml")
	markdown := filepath.Join(dir, "summary.md")
	var written []string
	scanFiles := func() {
		for _, p := range []string{junit, markdown} {
			if b, err := os.ReadFile(p); err == nil {
				written = append(written, string(b))
			}
		}
	}
	reports := []string{"--log-level", "debug", "--junit", junit, "--summary-markdown", markdown}
	run := func(stdin string, want int, args ...string) {
		t.Helper()
		r := rollguard(t, stdin, args...)
		written = append(written, r.stdout, r.stderr)
		scanFiles()
		if r.code != want {
			t.Fatalf("rollguard %s: exit %d, want %d\n%s\n%s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
		}
	}
	deploy := append([]string{"deploy", "-f", "-", "-n", ns, "--timeout", "2m"}, reports...)

	run(releaseV1(), 0, append(deploy, "-o", "json")...)
	run(releaseV2Broken(), 1, deploy...)
	run(releaseV2Broken(), 1, append(deploy, "-o", "json")...)
	run(releaseV2Broken(), 5, append(deploy, "--on-failure", "hold", "-o", "json")...)
	held := waitForOutcome(t, ns, "web", release.PendingApproval)
	run("", 0, append([]string{"rollback", held, "-n", ns, "--timeout", "2m", "-o", "json"}, reports...)...)
	run(releaseV2Broken(), 1, append(deploy, "--on-failure", "approve", "--approval-timeout", "1s")...)
	run("", 0, "history", "--app", "web", "-n", ns, "-o", "json", "--log-level", "debug")
	run("", 0, "history", "--app", "web", "-n", ns, "--log-level", "debug")
	run("", 0, "history", "deployment/web", "-n", ns, "-o", "json", "--log-level", "debug")
	run("", 0, "status", "deployment/web", "-n", ns, "-o", "json", "--log-level", "debug")
	assertV1(t, ns)

	// The canaries really went through: the Secret holds v1's, and records hold previous values.
	if recs := records(t, ns, "web"); len(recs) < 5 {
		t.Fatalf("%d records, want every run recorded", len(recs))
	}
	written = append(written, clusterTextExceptSecrets(t, ns)...)
	for _, canary := range []string{canaryV1, canaryV2} {
		enc := base64.StdEncoding.EncodeToString([]byte(canary))
		for _, w := range written {
			if strings.Contains(w, canary) || strings.Contains(w, enc) {
				t.Errorf("Secret value %s written:\n%s", canary, w)
			}
		}
	}
}

// clusterTextExceptSecrets is every object in ns rollguard could have written into, as JSON, except
// Secrets: the user's Secret and the release records are where Secret values belong.
func clusterTextExceptSecrets(t *testing.T, ns string) []string {
	t.Helper()
	ctx := context.Background()
	c := cluster.Client()
	var out []string
	add := func(v any, err error) {
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(v)
		out = append(out, string(b))
	}
	add(c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{}))
	add(c.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{}))
	add(c.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{}))
	add(c.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{}))
	add(c.CoreV1().Services(ns).List(ctx, metav1.ListOptions{}))
	add(c.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{}))
	secs, err := c.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Labels and annotations of Secrets are not secret: a value must not leak into them either.
	for _, s := range secs.Items {
		add(map[string]any{"name": s.Name, "labels": s.Labels, "annotations": s.Annotations}, nil)
	}
	return out
}
