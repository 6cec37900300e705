package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
)

// TestBadInputChangesNothing: every kind of bad input gives a one-line error naming the problem, a distinct
// exit code (3 bad input, 4 unreachable or unauthenticated), and leaves the cluster exactly as it was.
func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	// A healthy release is in place; bad input must not touch it.
	if r := rollguard(t, app{}.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m"); r.code != 0 {
		t.Fatalf("v1: exit %d\n%s", r.code, r.stderr)
	}
	v2 := app{image: "registry.example.com/web:2.0.0"}.yaml()
	goodCM := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: new-config\ndata:\n  a: b\n"
	emptyDir := t.TempDir()
	unreachable := kubeconfigFor(t, "https://127.0.0.1:1", "")
	expired := kubeconfigFor(t, "", "expired-or-forged-token")
	viewer := kubeconfigFor(t, "", viewerToken(t, ns))

	cases := []struct {
		name  string
		stdin string
		args  []string
		env   []string // replaces KUBECONFIG when set
		code  int
		want  string
	}{
		{"not yaml", "key: [unclosed\n", nil, nil, 3, "YAML"},
		{"yaml scalar", "just a string\n", nil, nil, 3, "<stdin>:1"},
		{"yaml list", "- a\n- b\n", nil, nil, 3, "<stdin>:1"},
		{"missing kind", "apiVersion: v1\nmetadata:\n  name: x\n", nil, nil, 3, "kind"},
		{"missing name", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", nil, nil, 3, "name"},
		{"unknown kind", strings.Replace(v2, "kind: Deployment", "kind: Deploymnt", 1), nil, nil, 3, "Deploymnt"},
		{"missing namespace", strings.Replace(v2, "metadata:\n  name: web", "metadata:\n  name: web\n  namespace: does-not-exist", 1), []string{"-n", "does-not-exist"}, nil, 3, "does-not-exist"},
		{"invalid field value", strings.Replace(v2, "replicas: 3", "replicas: -1", 1), nil, nil, 3, "spec.replicas"},
		{"unknown field", strings.Replace(v2, "replicas: 3", "replicas: 3\n  replicaz: 3", 1), nil, nil, 3, "replicaz"},
		{"good object with an invalid one", goodCM + "---\n" + strings.Replace(v2, "replicas: 3", "replicas: -1", 1), nil, nil, 3, "spec.replicas"},
		{"duplicate object", goodCM + "---\n" + goodCM, nil, nil, 3, "new-config"},
		{"bad timeout", v2, []string{"--timeout", "soon"}, nil, 3, "timeout"},
		{"negative timeout", v2, []string{"--timeout", "-5s"}, nil, 3, "timeout"},
		{"image for unknown container", v2, []string{"--image", "nope=registry.example.com/web:3.0.0"}, nil, 3, "nope"},
		{"malformed image flag", v2, []string{"--image", "registry.example.com/web:3.0.0"}, nil, 3, "CONTAINER=IMAGE"},
		{"latest tag", strings.Replace(v2, "web:2.0.0", "web:latest", 1), nil, nil, 3, "latest"},
		{"untagged image", strings.Replace(v2, "web:2.0.0", "web", 1), nil, nil, 3, "--allow-mutable-tags"},
		{"bad output format", v2, []string{"-o", "yaml"}, nil, 3, "output"},
		{"unknown flag", v2, []string{"--frobnicate"}, nil, 3, "frobnicate"},
		{"missing file", "", []string{"-f", filepath.Join(emptyDir, "nope.yaml")}, nil, 3, "nope.yaml"},
		{"empty folder", "", []string{"-f", emptyDir}, nil, 3, "contains no"},
		{"no manifests", "", nil, nil, 3, "no manifests"},
		{"unreachable cluster", v2, nil, []string{"KUBECONFIG=" + unreachable}, 4, "cannot reach"},
		{"expired credentials", v2, nil, []string{"KUBECONFIG=" + expired}, 4, "credentials"},
		{"unknown context", v2, []string{"--context", "nope"}, nil, 4, "nope"},
		{"forbidden verbs", v2, nil, []string{"KUBECONFIG=" + viewer}, 3, "forbidden"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, ns)
			args := tc.args
			hasFile := false
			for _, a := range args {
				hasFile = hasFile || a == "-f"
			}
			if !hasFile && tc.stdin != "" {
				args = append([]string{"-f", "-"}, args...)
			}
			args = append([]string{"deploy", "-n", ns, "--timeout", "1m"}, args...)
			// later flags win: the case's own -n or --timeout override the defaults above
			env := tc.env
			if env == nil {
				env = []string{"KUBECONFIG=" + cluster.Kubeconfig}
			}
			r := rollguardEnv(t, env, tc.stdin, args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			msg := strings.TrimSpace(r.stderr)
			if lines := strings.Count(msg, "\n") + 1; lines != 1 {
				t.Errorf("error is %d lines, want 1:\n%s", lines, msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not mention %q", msg, tc.want)
			}
			if after := snapshot(t, ns); after != before {
				t.Errorf("cluster changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// snapshot lists the namespace's objects with their resource versions: any change shows as a difference.
func snapshot(t *testing.T, ns string) string {
	t.Helper()
	ctx := context.Background()
	c := cluster.Client()
	var lines []string
	deps, err := c.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range deps.Items {
		lines = append(lines, fmt.Sprintf("Deployment/%s %s gen=%d", o.Name, o.ResourceVersion, o.Generation))
	}
	rss, err := c.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range rss.Items {
		lines = append(lines, "ReplicaSet/"+o.Name)
	}
	cms, err := c.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range cms.Items {
		lines = append(lines, "ConfigMap/"+o.Name+" "+o.ResourceVersion)
	}
	svcs, err := c.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range svcs.Items {
		lines = append(lines, "Service/"+o.Name+" "+o.ResourceVersion)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// kubeconfigFor writes a kubeconfig derived from the sandbox's, with another server and/or a bearer token.
func kubeconfigFor(t *testing.T, server, token string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(cluster.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		if server != "" {
			c.Server = server
		}
	}
	if token != "" {
		for _, a := range cfg.AuthInfos {
			a.ClientCertificateData, a.ClientKeyData = nil, nil
			a.ClientCertificate, a.ClientKey = "", ""
			a.Token = token
		}
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// viewerToken is a token for a service account that may only read the namespace.
func viewerToken(t *testing.T, ns string) string {
	t.Helper()
	ctx := context.Background()
	c := cluster.Client()
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "viewer"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "viewer"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"", "apps"},
			Resources: []string{"deployments", "replicasets", "pods", "events", "configmaps", "services", "namespaces"},
			Verbs:     []string{"get", "list", "watch"},
		}},
	}
	if _, err := c.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "viewer"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "viewer", Namespace: ns}},
	}
	if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Reading the namespace object itself is cluster-scoped; without it rollguard could not check the
	// namespace exists, which is not the permission this case is about.
	cr := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "viewer-" + ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get"}}},
	}
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "viewer-" + ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: cr.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "viewer", Namespace: ns}},
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.RbacV1().ClusterRoleBindings().Delete(context.Background(), crb.Name, metav1.DeleteOptions{})
		_ = c.RbacV1().ClusterRoles().Delete(context.Background(), cr.Name, metav1.DeleteOptions{})
	})
	tok, err := c.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "viewer", &authv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Status.Token
}
