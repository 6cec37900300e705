package rbac

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// allows is RBAC's rule matching for the fields rollguard uses (no wildcards, no resource names).
func allows(rules []rbacv1.PolicyRule, a Access) bool {
	res := a.Resource
	if a.Subresource != "" {
		res += "/" + a.Subresource
	}
	for _, r := range rules {
		if slices.Contains(r.APIGroups, a.Group) && slices.Contains(r.Resources, res) && slices.Contains(r.Verbs, a.Verb) {
			return true
		}
	}
	return false
}

// The printed role grants everything the preflight asks about, for every default kind, new or existing.
func TestRulesGrantEveryReleaseAccess(t *testing.T) {
	var objs []Object
	for _, r := range DefaultResources() {
		workload := r.Group == "apps"
		objs = append(objs, Object{Resource: r, Namespace: "shop", Name: "a", Exists: true, Workload: workload},
			Object{Resource: r, Namespace: "shop", Name: "b", Workload: workload})
	}
	rules := Rules(DefaultResources())
	for _, a := range ReleaseAccess("shop", objs, true) {
		if !allows(rules, a) {
			t.Errorf("Rules do not grant %s (needed for %s)", a, a.For)
		}
	}
}

func TestRulesWithExtraResource(t *testing.T) {
	w, err := ParseResource("widgets.example.com")
	if err != nil {
		t.Fatal(err)
	}
	rules := Rules(append(DefaultResources(), w))
	for _, a := range ReleaseAccess("shop", []Object{{Resource: w, Namespace: "shop", Name: "x"}}, false) {
		if !allows(rules, a) {
			t.Errorf("Rules do not grant %s", a)
		}
	}
	if allows(Rules(DefaultResources()), Access{Verb: "patch", Group: "example.com", Resource: "widgets"}) {
		t.Error("default rules grant a kind nobody asked for")
	}
}

func TestRulesNeverGrantEscalation(t *testing.T) {
	for _, r := range ClusterRules(DefaultResources()) {
		for _, v := range r.Verbs {
			if v == "*" || v == "escalate" || v == "bind" || v == "impersonate" {
				t.Errorf("rule %v grants %s", r, v)
			}
		}
		for _, res := range r.Resources {
			if res == "*" || strings.HasPrefix(res, "roles") || strings.HasPrefix(res, "clusterroles") {
				t.Errorf("rule %v names %s", r, res)
			}
		}
	}
}

func TestParseResource(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Resource
		ok   bool
	}{
		{"configmaps", Resource{"", "configmaps"}, true},
		{"widgets.example.com", Resource{"example.com", "widgets"}, true},
		{"certificates.cert-manager.io", Resource{"cert-manager.io", "certificates"}, true},
		{"", Resource{}, false},
		{"Widget", Resource{}, false},
		{"apps/v1", Resource{}, false},
	} {
		got, err := ParseResource(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseResource(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestRefusal(t *testing.T) {
	rb := Access{Verb: "delete", Resource: "services", Namespace: "shop", Name: "web", For: ForRollback}
	dep := Access{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: "shop", For: ForDeploy}
	for _, tc := range []struct {
		missing []Access
		want    string
	}{
		{nil, ""},
		{[]Access{rb}, "the identity can deploy but could not roll back: missing delete on services in ns shop; see rollguard rbac"},
		{[]Access{rb, dep}, "the identity cannot deploy this release: missing create on leases.coordination.k8s.io in ns shop; see rollguard rbac"},
	} {
		err := Refusal(tc.missing)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("Refusal(%v) = %q, want %q", tc.missing, got, tc.want)
		}
	}
}

func TestObjects(t *testing.T) {
	objs, err := Objects(Options{Namespace: "shop", ServiceAccount: "ci:deployer"})
	if err != nil {
		t.Fatal(err)
	}
	role, ok := objs[0].(*rbacv1.Role)
	if !ok || role.Namespace != "shop" || role.Name != "rollguard" {
		t.Fatalf("first object %#v, want Role rollguard in shop", objs[0])
	}
	rb, ok := objs[1].(*rbacv1.RoleBinding)
	if !ok || rb.Subjects[0].Namespace != "ci" || rb.Subjects[0].Name != "deployer" || rb.RoleRef.Name != "rollguard" {
		t.Fatalf("binding %#v", objs[1])
	}
	if _, err := Objects(Options{}); err == nil {
		t.Error("a Role without a namespace was accepted")
	}
	if _, err := Objects(Options{Namespace: "x", ServiceAccount: "deployer"}); err == nil {
		t.Error("--service-account without a namespace was accepted")
	}
	cluster, err := Objects(Options{ClusterScope: true})
	if err != nil || len(cluster) != 1 {
		t.Fatalf("cluster scope: %v %v", cluster, err)
	}
	if _, ok := cluster[0].(*rbacv1.ClusterRole); !ok {
		t.Errorf("cluster scope printed %T", cluster[0])
	}
}

// A release of many objects asks once per verb, resource and namespace; a refused question is asked again
// about each object it covers, and only about those.
func TestReleaseAccessOncePerKind(t *testing.T) {
	deploy := Resource{"apps", "deployments"}
	var objs []Object
	for i := range 1000 {
		objs = append(objs, Object{Resource: deploy, Namespace: "shop", Name: fmt.Sprintf("web-%d", i), Exists: i%2 == 0, Workload: true})
	}
	objs = append(objs, Object{Resource: Resource{"", "configmaps"}, Namespace: "shop", Name: "config"})
	accesses := ReleaseAccess("shop", objs, false)
	if len(accesses) > 40 {
		t.Fatalf("%d accesses for 1,001 objects, want one per verb, resource and namespace", len(accesses))
	}
	for _, a := range accesses {
		if a.Name != "" {
			t.Errorf("access %s names an object", a)
		}
	}
	update := Access{Verb: "update", Group: "apps", Resource: "deployments", Namespace: "shop", For: ForRollback}
	if !slices.Contains(accesses, update) {
		t.Fatalf("no %s among %v", update, accesses)
	}
	named := Named(update, objs)
	if len(named) != 500 || named[0].Name != "web-0" || named[1].Name != "web-2" || named[0].Verb != "update" {
		t.Errorf("Named(%s) = %d accesses starting %v, want the 500 existing Deployments", update, len(named), named[:min(2, len(named))])
	}
	if got := Named(Access{Verb: "list", Resource: "secrets", Namespace: "shop", For: ForDeploy}, objs); got != nil {
		t.Errorf("Named expanded an access about records: %v", got)
	}
}
