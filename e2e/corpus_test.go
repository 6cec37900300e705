package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"sigs.k8s.io/yaml"
)

// corpusCase is one folder of testdata/corpus: the arguments of one rollguard run (args, one per line),
// the files it reads, and what it must answer (expect.yaml).
type corpusCase struct {
	Code        int      `json:"code"`
	Contains    string   `json:"contains"`
	NotContains []string `json:"notContains"`
	// Kubeconfig picks the identity: "" the sandbox admin, unreachable, expired, or viewer (read-only).
	Kubeconfig string `json:"kubeconfig"`
}

// TestBadInputCorpus runs every case of testdata/corpus against a namespace holding a healthy release:
// each must exit with its code, print one line naming the problem, never print a Secret value, and leave
// the cluster exactly as it was. Adding a case is adding a folder.
func TestBadInputCorpus(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs(filepath.Join("testdata", "corpus"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 40 {
		t.Fatalf("the corpus holds %d cases, want at least 40", len(entries))
	}
	ns := cluster.Namespace(t)
	deployV1(t, ns)
	kubeconfigs := map[string]string{
		"":            cluster.Kubeconfig,
		"unreachable": kubeconfigFor(t, "https://127.0.0.1:1", ""),
		"expired":     kubeconfigFor(t, "", "expired-or-forged-token"),
		"viewer":      kubeconfigFor(t, "", viewerToken(t, ns)),
	}
	empty := t.TempDir()
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			var want corpusCase
			readYAML(t, filepath.Join(dir, "expect.yaml"), &want)
			kubeconfig, ok := kubeconfigs[want.Kubeconfig]
			if !ok {
				t.Fatalf("expect.yaml: unknown kubeconfig %q", want.Kubeconfig)
			}
			raw, err := os.ReadFile(filepath.Join(dir, "args"))
			if err != nil {
				t.Fatal(err)
			}
			var args []string
			for _, a := range strings.Split(strings.TrimRight(string(raw), "\n"), "\n") {
				args = append(args, strings.NewReplacer("$NS", ns, "$CASE", dir, "$EMPTY", empty).Replace(a))
			}
			stdin, _ := os.ReadFile(filepath.Join(dir, "stdin"))

			before := clusterState(t, ns)
			r := rollguardEnv(t, []string{"KUBECONFIG=" + kubeconfig}, string(stdin), args...)
			if r.code != want.Code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, want.Code, r.stdout, r.stderr)
			}
			msg := strings.TrimSpace(r.stderr)
			if n := strings.Count(msg, "\n") + 1; n != 1 {
				t.Errorf("error is %d lines, want 1:\n%s", n, msg)
			}
			if !strings.Contains(msg, want.Contains) {
				t.Errorf("error %q does not mention %q", msg, want.Contains)
			}
			for _, s := range want.NotContains {
				if strings.Contains(r.stdout+r.stderr, s) {
					t.Errorf("output shows %q:\n%s%s", s, r.stdout, r.stderr)
				}
			}
			noSecrets(t, r.stdout, r.stderr)
			if after := clusterState(t, ns); after != before {
				t.Errorf("cluster changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// clusterState lists, with resource versions, everything a rollguard run could change in a namespace:
// workloads, their ReplicaSets, ConfigMaps, Secrets (release records included), Services, service
// accounts, Leases (locks), and the cluster's namespaces.
func clusterState(t *testing.T, ns string) string {
	t.Helper()
	ctx := context.Background()
	c := cluster.Client()
	var lines []string
	add := func(kind, name, rv string) { lines = append(lines, kind+"/"+name+" "+rv) }
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	deps, err := c.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	must(err)
	for _, o := range deps.Items {
		add("Deployment", o.Name, fmt.Sprintf("%s gen=%d", o.ResourceVersion, o.Generation))
	}
	rss, err := c.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	must(err)
	for _, o := range rss.Items {
		add("ReplicaSet", o.Name, "")
	}
	cms, err := c.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	must(err)
	for _, o := range cms.Items {
		add("ConfigMap", o.Name, o.ResourceVersion)
	}
	secs, err := c.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	must(err)
	for _, o := range secs.Items {
		add("Secret", o.Name, o.ResourceVersion)
	}
	svcs, err := c.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	must(err)
	for _, o := range svcs.Items {
		add("Service", o.Name, o.ResourceVersion)
	}
	sas, err := c.CoreV1().ServiceAccounts(ns).List(ctx, metav1.ListOptions{})
	must(err)
	for _, o := range sas.Items {
		add("ServiceAccount", o.Name, o.ResourceVersion)
	}
	leases, err := c.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{})
	must(err)
	for _, o := range leases.Items {
		add("Lease", o.Name, o.ResourceVersion)
	}
	// Every other kind a release commonly holds: a refused release must not have created or changed any.
	meta, err := metadata.NewForConfig(cluster.RESTConfig())
	must(err)
	for _, gvr := range []schema.GroupVersionResource{
		{Group: "apps", Version: "v1", Resource: "statefulsets"},
		{Group: "apps", Version: "v1", Resource: "daemonsets"},
		{Group: "batch", Version: "v1", Resource: "jobs"},
		{Group: "batch", Version: "v1", Resource: "cronjobs"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
		{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"},
		{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
		{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
		{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"},
		{Version: "v1", Resource: "persistentvolumeclaims"},
	} {
		list, err := meta.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
		must(err)
		for _, o := range list.Items {
			add(gvr.Resource, o.Name, o.ResourceVersion)
		}
	}
	nss, err := c.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	must(err)
	for _, o := range nss.Items {
		if o.Name == "does-not-exist" || o.Name == "staging" {
			add("Namespace", o.Name, "")
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
