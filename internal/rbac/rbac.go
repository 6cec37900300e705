// Package rbac holds the Kubernetes permissions rollguard needs: the rules of the Role (or ClusterRole) a
// pipeline identity is bound to, and the access checks a deploy asks the API server about before it
// changes anything. Both come from what the code does, so they are kept side by side and tested together.
package rbac

import (
	"fmt"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Resource is one API resource (plural, lower case) in an API group ("" is the core group).
type Resource struct {
	Group    string
	Resource string
}

func (r Resource) String() string {
	if r.Group == "" {
		return r.Resource
	}
	return r.Resource + "." + r.Group
}

// ParseResource reads RESOURCE[.GROUP] the way kubectl prints it: "configmaps", "widgets.example.com".
func ParseResource(s string) (Resource, error) {
	name, group, _ := strings.Cut(strings.TrimSpace(s), ".")
	if name == "" || name != strings.ToLower(name) || strings.ContainsAny(s, "/ ") {
		return Resource{}, fmt.Errorf("%q is not a resource: pass the plural, lower-case resource and its API group, e.g. widgets.example.com or configmaps", s)
	}
	return Resource{Group: group, Resource: name}, nil
}

// ApplyVerbs are what a release needs on each kind it holds: get (record the previous state), patch
// (server-side apply; it also creates), create (a rollback re-creates an object deleted meanwhile), update
// (a rollback replaces the object by its previous state) and delete (a rollback removes what the release
// created).
var ApplyVerbs = []string{"get", "create", "patch", "update", "delete"}

// DefaultResources are the namespaced kinds releases commonly hold. Anything else (a CRD's kind, RBAC
// objects) is added with `rollguard rbac --resource RESOURCE.GROUP`.
func DefaultResources() []Resource {
	return []Resource{
		{"", "configmaps"}, {"", "secrets"}, {"", "services"}, {"", "serviceaccounts"}, {"", "persistentvolumeclaims"},
		{"apps", "deployments"}, {"apps", "statefulsets"}, {"apps", "daemonsets"},
		{"autoscaling", "horizontalpodautoscalers"},
		{"policy", "poddisruptionbudgets"},
		{"networking.k8s.io", "ingresses"}, {"networking.k8s.io", "networkpolicies"},
		{"batch", "jobs"}, {"batch", "cronjobs"},
	}
}

// Rules are what rollguard needs in a namespace to deploy releases holding the given kinds, track them,
// roll them back (deploy, rollback, undo), keep and read the history, lock, and wait for approvals.
func Rules(apply []Resource) []rbacv1.PolicyRule {
	verbs := map[Resource]map[string]bool{}
	add := grant(verbs)
	for _, r := range apply {
		add(r, ApplyVerbs...)
	}
	// Tracking follows workloads and what they own with list+watch (informers); history and undo read
	// ReplicaSets and ControllerRevisions; crash loops are explained with the previous container log.
	for _, r := range []Resource{{"apps", "deployments"}, {"apps", "statefulsets"}, {"apps", "daemonsets"}, {"apps", "replicasets"}, {"apps", "controllerrevisions"}, {"batch", "jobs"}, {"", "pods"}, {"", "events"}} {
		add(r, "get", "list", "watch")
	}
	add(Resource{"", "pods/log"}, "get")
	// Release records are Secrets (they hold the previous state of Secrets the release changes): created,
	// updated as the run goes, listed for history, watched for approvals, pruned beyond the history limit.
	add(Resource{"", "secrets"}, "get", "list", "watch", "create", "update", "delete")
	// One run per app: a Lease.
	add(Resource{"coordination.k8s.io", "leases"}, "get", "watch", "create", "update", "delete")
	// A deploy checks its namespace exists.
	add(Resource{"", "namespaces"}, "get")
	return compact(verbs)
}

// ClusterRules are Rules for a ClusterRole: the same, plus the reviews rollguard asks about itself (who am
// I, may I), which are cluster-scoped. Most clusters already grant those to every authenticated user
// (ClusterRole system:basic-user).
func ClusterRules(apply []Resource) []rbacv1.PolicyRule {
	rules := Rules(apply)
	return append(rules,
		rbacv1.PolicyRule{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}, Verbs: []string{"create"}},
	)
}

// grant returns a function that adds verbs on a resource to verbs.
func grant(verbs map[Resource]map[string]bool) func(Resource, ...string) {
	return func(r Resource, vs ...string) {
		if verbs[r] == nil {
			verbs[r] = map[string]bool{}
		}
		for _, v := range vs {
			verbs[r][v] = true
		}
	}
}

// compact turns per-resource verb sets into rules, one per API group and verb set, in a stable order.
func compact(verbs map[Resource]map[string]bool) []rbacv1.PolicyRule {
	type key struct{ group, verbs string }
	byKey := map[key][]string{}
	for r, vs := range verbs {
		k := key{r.Group, strings.Join(sortedVerbs(vs), ",")}
		byKey[k] = append(byKey[k], r.Resource)
	}
	keys := make([]key, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].group != keys[j].group {
			return keys[i].group < keys[j].group
		}
		return keys[i].verbs < keys[j].verbs
	})
	var rules []rbacv1.PolicyRule
	for _, k := range keys {
		res := byKey[k]
		sort.Strings(res)
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{k.group}, Resources: res, Verbs: strings.Split(k.verbs, ",")})
	}
	return rules
}

// verbOrder lists verbs the way kubectl's docs do, reads before writes.
var verbOrder = []string{"get", "list", "watch", "create", "patch", "update", "delete"}

func sortedVerbs(vs map[string]bool) []string {
	var out []string
	for _, v := range verbOrder {
		if vs[v] {
			out = append(out, v)
		}
	}
	return out
}

// Options shape the printed role.
type Options struct {
	// Name of the Role or ClusterRole (and its binding).
	Name string
	// Namespace of the Role; ignored with ClusterScope.
	Namespace    string
	ClusterScope bool
	// Apply are the kinds releases hold; nil means DefaultResources.
	Apply []Resource
	// ServiceAccount, "NAMESPACE:NAME", adds a binding of the role to that service account.
	ServiceAccount string
}

// Objects are the Role or ClusterRole, and the binding when a service account is named.
func Objects(o Options) ([]runtime.Object, error) {
	if o.Name == "" {
		o.Name = "rollguard"
	}
	apply := o.Apply
	if apply == nil {
		apply = DefaultResources()
	}
	var subject *rbacv1.Subject
	if o.ServiceAccount != "" {
		ns, name, ok := strings.Cut(o.ServiceAccount, ":")
		if !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("--service-account takes NAMESPACE:NAME, got %q", o.ServiceAccount)
		}
		subject = &rbacv1.Subject{Kind: "ServiceAccount", Namespace: ns, Name: name}
	}
	labels := map[string]string{"app.kubernetes.io/managed-by": "rollguard"}
	if o.ClusterScope {
		role := &rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: o.Name, Labels: labels},
			Rules:      ClusterRules(apply),
		}
		out := []runtime.Object{role}
		if subject != nil {
			out = append(out, &rbacv1.ClusterRoleBinding{
				TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
				ObjectMeta: metav1.ObjectMeta{Name: o.Name, Labels: labels},
				RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: o.Name},
				Subjects:   []rbacv1.Subject{*subject},
			})
		}
		return out, nil
	}
	if o.Namespace == "" {
		return nil, fmt.Errorf("no namespace for the Role: pass -n NAMESPACE or --cluster-scope")
	}
	role := &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, Labels: labels},
		Rules:      Rules(apply),
	}
	out := []runtime.Object{role}
	if subject != nil {
		out = append(out, &rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, Labels: labels},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: o.Name},
			Subjects:   []rbacv1.Subject{*subject},
		})
	}
	return out, nil
}
