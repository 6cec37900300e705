package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/rollguard/rollguard/internal/rbac"
	"github.com/rollguard/rollguard/internal/release"
)

// serviceAccountKubeconfig creates a service account and returns a kubeconfig that authenticates as it.
func serviceAccountKubeconfig(t *testing.T, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	c := cluster.Client()
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := c.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return kubeconfigFor(t, "", tok.Status.Token)
}

// bindPrintedRole applies exactly what `rollguard rbac -n NS --service-account NS:SA` prints.
func bindPrintedRole(t *testing.T, ns, sa string) {
	t.Helper()
	r := rollguard(t, "", "rbac", "-n", ns, "--service-account", ns+":"+sa, "--name", "rollguard-"+sa)
	if r.code != 0 {
		t.Fatalf("rollguard rbac: exit %d\n%s", r.code, r.stderr)
	}
	docs := strings.Split(r.stdout, "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("rollguard rbac printed %d documents, want a Role and a RoleBinding:\n%s", len(docs), r.stdout)
	}
	var role rbacv1.Role
	var binding rbacv1.RoleBinding
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &role); err != nil || role.Kind != "Role" {
		t.Fatalf("first document is not a Role (%v):\n%s", err, docs[0])
	}
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &binding); err != nil || binding.Kind != "RoleBinding" {
		t.Fatalf("second document is not a RoleBinding (%v):\n%s", err, docs[1])
	}
	ctx := context.Background()
	if _, err := cluster.Client().RbacV1().Roles(ns).Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Client().RbacV1().RoleBindings(ns).Create(ctx, &binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestLeastPrivilegeIdentity runs rollguard as a service account bound to exactly the Role `rollguard rbac`
// prints, and nothing else: a healthy deploy, a failing one rolled back, history, status, an approval
// given by a second process, and a held rollback finished by `rollguard rollback`.
func TestLeastPrivilegeIdentity(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	kc := serviceAccountKubeconfig(t, ns, "deployer")
	bindPrintedRole(t, ns, "deployer")
	env := []string{"KUBECONFIG=" + kc}
	run := func(stdin string, want int, args ...string) result {
		t.Helper()
		r := rollguardEnv(t, env, stdin, args...)
		if r.code != want {
			t.Fatalf("rollguard %s: exit %d, want %d\n%s\n%s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
		}
		return r
	}

	run(releaseV1(), 0, "deploy", "-f", "-", "-n", ns, "--timeout", "2m")
	run(releaseV2Broken(), 1, "deploy", "-f", "-", "-n", ns, "--timeout", "2m")
	assertV1(t, ns)
	h := run("", 0, "history", "--app", "web", "-n", ns, "-o", "json")
	if !strings.Contains(h.stdout, "web.v2") {
		t.Errorf("history does not list web.v2:\n%s", h.stdout)
	}
	run("", 0, "history", "deployment/web", "-n", ns)
	run("", 0, "status", "deployment/web", "-n", ns, "--timeout", "1m")

	waitDeploy := startRollguardEnv(t, env, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--on-failure", "approve", "--approval-timeout", "5m", "--timeout", "2m")
	id := waitForOutcome(t, ns, "web", release.PendingApproval)
	run("", 0, "approve", id, "-n", ns)
	if r := waitDeploy(); r.code != 1 {
		t.Fatalf("approved deploy: exit %d, want 1\n%s", r.code, r.stderr)
	}
	assertV1(t, ns)
	if rec := record(t, ns, id); rec.Approval == nil || !strings.Contains(rec.Approval.By, "system:serviceaccount:"+ns+":deployer") {
		t.Errorf("approval not recorded as the service account: %+v", rec.Approval)
	}

	run(releaseV2Broken(), 5, "deploy", "-f", "-", "-n", ns, "--on-failure", "hold", "--timeout", "2m")
	held := waitForOutcome(t, ns, "web", release.PendingApproval)
	run("", 0, "rollback", held, "-n", ns, "--timeout", "2m")
	assertV1(t, ns)
}

// TestPreflightRefusesUnrecoverableDeploy: an identity that may apply a release but not delete the Service
// it would create could not roll it back; the deploy is refused before anything changes. The same identity
// may deploy a release whose rollback needs no delete.
func TestPreflightRefusesUnrecoverableDeploy(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployV1(t, ns)
	kc := serviceAccountKubeconfig(t, ns, "nodelete")
	var rules []rbacv1.PolicyRule
	for _, r := range rbac.Rules(rbac.DefaultResources()) {
		if i := slices.Index(r.Resources, "services"); i >= 0 && r.APIGroups[0] == "" {
			r.Resources = slices.Delete(slices.Clone(r.Resources), i, i+1)
			rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"services"},
				Verbs: slices.DeleteFunc(slices.Clone(r.Verbs), func(v string) bool { return v == "delete" })})
		}
		rules = append(rules, r)
	}
	ctx := context.Background()
	if _, err := cluster.Client().RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "nodelete"}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Client().RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "nodelete"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "nodelete"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "nodelete", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env := []string{"KUBECONFIG=" + kc}

	before := clusterState(t, ns)
	r := rollguardEnv(t, env, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m")
	if r.code != 3 {
		t.Fatalf("exit %d, want 3 (refused)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	want := "the identity can deploy but could not roll back: missing delete on services in ns " + ns + "; see rollguard rbac"
	if msg := strings.TrimPrefix(strings.TrimSpace(r.stderr), "Error: "); msg != want {
		t.Errorf("message\n%q\nwant\n%q", msg, want)
	}
	if after := clusterState(t, ns); after != before {
		t.Errorf("cluster changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if ok := rollguardEnv(t, env, releaseV1(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m"); ok.code != 0 {
		t.Errorf("a release whose rollback needs no delete: exit %d, want 0\n%s", ok.code, ok.stderr)
	}
}

// TestPreflightAsksByNameForNamedRoles: the preflight asks once per verb, kind and namespace; a role that
// grants a kind only for the release's objects by name (resourceNames) is refused that question, and the
// preflight then asks about each object, so the release is deployed. A role naming other objects is refused.
func TestPreflightAsksByNameForNamedRoles(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	service := "apiVersion: v1\nkind: Service\nmetadata:\n  name: web-v2\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n---\n"
	ctx := context.Background()
	for _, tc := range []struct {
		sa, named string
		code      int
	}{{"named", "web-v2", 0}, {"othername", "web-v3", 3}} {
		var rules []rbacv1.PolicyRule
		for _, r := range rbac.Rules(rbac.DefaultResources()) {
			if i := slices.Index(r.Resources, "services"); i >= 0 && r.APIGroups[0] == "" {
				r.Resources = slices.Delete(slices.Clone(r.Resources), i, i+1)
			}
			rules = append(rules, r)
		}
		// Creating cannot be limited by name (the request has none); everything else on Services is.
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"create"}},
			rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"services"}, ResourceNames: []string{tc.named},
				Verbs: []string{"get", "patch", "update", "delete"}})
		kc := serviceAccountKubeconfig(t, ns, tc.sa)
		if _, err := cluster.Client().RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: tc.sa}, Rules: rules}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cluster.Client().RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: tc.sa},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: tc.sa},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: tc.sa, Namespace: ns}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		r := rollguardEnv(t, []string{"KUBECONFIG=" + kc}, service+releaseV1(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m", "--app", tc.sa)
		if r.code != tc.code {
			t.Fatalf("role naming Service %s: exit %d, want %d\n%s", tc.named, r.code, tc.code, r.stderr)
		}
		if tc.code == 3 && !strings.Contains(r.stderr, `"services"`) {
			t.Errorf("refusal does not name the Service access:\n%s", r.stderr)
		}
	}
}
