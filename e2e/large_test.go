package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/release"
)

// largeRelease is 1,000 ConfigMaps of 2 KiB that do not compress much, and the web Deployment: once they
// exist, the previous states a release of them records take about 1.5 MiB compressed, more than one Secret.
func largeRelease(values []string, w app) string {
	var b strings.Builder
	for i, v := range values {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-%04d\ndata:\n  blob: %s\n---\n", i, v)
	}
	return b.String() + w.yaml()
}

func randomValues(n int) []string {
	out := make([]string, n)
	for i := range out {
		raw := make([]byte, 1536)
		_, _ = rand.Read(raw)
		out[i] = base64.StdEncoding.EncodeToString(raw)
	}
	return out
}

// TestLargeReleaseKilledMidGroup: a release of 1,000 ConfigMaps and a Deployment whose record is split over
// several Secrets is killed with its ConfigMaps half applied (all in one group, applied at once); the next
// run converges from the split record, finds the Deployment broken and rolls every ConfigMap back; history
// reads the split records.
func TestLargeReleaseKilledMidGroup(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	v1 := randomValues(1000)
	if r := rollguard(t, largeRelease(v1, app{}), "deploy", "-f", "-", "-n", ns, "--timeout", "5m"); r.code != 0 {
		t.Fatalf("v1: exit %d\n%s", r.code, r.stderr)
	}
	v2 := largeRelease(randomValues(1000), app{image: "registry.example.com/web:2.0.0", scenario: "image-pull-failure"})
	point := "deploy:mid-group"
	killed := rollguardEnv(t, []string{"KUBECONFIG=" + cluster.Kubeconfig, crashpoint.Env + "=" + point}, v2,
		"deploy", "-f", "-", "-n", ns, "--timeout", "5m", "--lock-ttl", "2s")
	if killed.code != -1 || !strings.Contains(killed.stderr, crashpoint.Line(point)) {
		t.Fatalf("not killed at %s: exit %d\n%s", point, killed.code, killed.stderr)
	}
	ctx := context.Background()
	secrets, err := cluster.Client().CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parts := 0
	for _, s := range secrets.Items {
		if s.Type == release.PartSecretType {
			parts++
		}
	}
	if parts == 0 {
		t.Fatal("the killed run's record was not split; the test proves nothing about split records")
	}
	r := rollguard(t, v2, "deploy", "-f", "-", "-n", ns, "--timeout", "5m", "--wait-for-lock", "1m")
	if r.code != 1 {
		t.Fatalf("re-run: exit %d, want 1 (rolled back healthy)\n%s", r.code, r.stderr)
	}
	cms, err := cluster.Client().CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	restored := 0
	for _, cm := range cms.Items {
		var i int
		if _, err := fmt.Sscanf(cm.Name, "config-%04d", &i); err == nil {
			if cm.Data["blob"] != v1[i] {
				t.Errorf("ConfigMap %s not restored to v1", cm.Name)
			}
			restored++
		}
	}
	if restored != 1000 {
		t.Errorf("%d ConfigMaps, want 1000", restored)
	}
	recs := records(t, ns, "web")
	if len(recs) != 3 || recs[0].Outcome != release.RolledBack || len(recs[0].Objects) != 1001 {
		t.Fatalf("records: %d, newest %s with %d objects; want 3, rolled_back, 1001", len(recs), recs[0].Outcome, len(recs[0].Objects))
	}
	h := rollguard(t, "", "history", "--app", "web", "-n", ns)
	if h.code != 0 || !strings.Contains(h.stdout, recs[0].ID) || !strings.Contains(h.stdout, recs[2].ID) {
		t.Errorf("history: exit %d\n%s\n%s", h.code, h.stdout, h.stderr)
	}
}
