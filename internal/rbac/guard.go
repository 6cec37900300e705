package rbac

import (
	rbacv1 "k8s.io/api/rbac/v1"
)

// GuardRules are the ClusterRole of `rollguard guard`, from what its code does and nothing more. It
// watches workloads and what they own everywhere (one watch per kind), writes only the workloads it rolls
// back (update: the rollback replaces the template; patch: the rollguard.dev/guard-release annotation),
// keeps release records (Secrets) in the workloads' namespaces, takes the app locks and its own leader
// Lease, and emits Events. It never creates or deletes a workload.
func GuardRules() []rbacv1.PolicyRule {
	verbs := map[Resource]map[string]bool{}
	add := grant(verbs)
	for _, r := range []Resource{{"apps", "deployments"}, {"apps", "statefulsets"}, {"apps", "daemonsets"}} {
		add(r, "get", "list", "watch", "patch", "update")
	}
	// The diagnosis reads what workloads own, from the guard's caches; so does the verification of a
	// rollback (track.Source), which therefore opens no watches of its own (no Jobs).
	for _, r := range []Resource{{"apps", "replicasets"}, {"apps", "controllerrevisions"}, {"", "pods"}, {"", "events"}, {"", "namespaces"}} {
		add(r, "get", "list", "watch")
	}
	add(Resource{"", "pods/log"}, "get")
	// A StatefulSet's forced rollback: its pods stuck on the failed revision are deleted (never a workload).
	add(Resource{"", "pods"}, "delete")
	// Release records: created and updated as a rollout goes, listed to find known-bad templates, pruned.
	add(Resource{"", "secrets"}, "get", "list", "create", "update", "delete")
	// App locks (a deploy holding one owns the rollout) and the guard's leader-election Lease.
	add(Resource{"coordination.k8s.io", "leases"}, "get", "watch", "create", "update", "delete")
	// Events on the workloads it acts on (the events.k8s.io API; core for older recorders).
	add(Resource{"", "events"}, "create", "patch")
	add(Resource{"events.k8s.io", "events"}, "create", "patch")
	// Whether a cluster autoscaler runs decides how long an unschedulable pod may wait, as for a deploy;
	// its status ConfigMap, by name only.
	return append(compact(verbs), rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"},
		ResourceNames: []string{"cluster-autoscaler-status"}, Verbs: []string{"get"}})
}
