package rbac

import (
	"fmt"
	"sort"
	"strings"
)

// Need says which part of a run requires an access.
type Need string

const (
	// ForDeploy is needed to deploy and track the release.
	ForDeploy Need = "deploy"
	// ForRollback is needed only to roll the release back.
	ForRollback Need = "rollback"
)

// Access is one permission a run needs, asked of the API server with a SelfSubjectAccessReview.
type Access struct {
	Verb        string
	Group       string
	Resource    string
	Subresource string
	Namespace   string // "" for cluster-scoped resources
	Name        string // "" for any object (list, watch, create of a generated name)
	For         Need
}

func (a Access) String() string {
	r := Resource{Group: a.Group, Resource: a.Resource}.String()
	if a.Subresource != "" {
		r = a.Resource + "/" + a.Subresource
	}
	s := a.Verb + " on " + r
	if a.Name != "" {
		s += " " + a.Name
	}
	if a.Namespace != "" {
		s += " in namespace " + a.Namespace
	}
	return s
}

// Object is one object of a release, resolved to its resource.
type Object struct {
	Resource
	Namespace string
	Name      string
	// Exists says the object is live before the release: a rollback replaces it (update) instead of
	// deleting it.
	Exists bool
	// Workload is true for what rollguard tracks (Deployment, StatefulSet, DaemonSet, Job).
	Workload bool
}

// ReleaseAccess lists every access a deploy of objects into namespace ns needs, for the deploy itself and
// for rolling it back, without duplicates. approval adds the watch on release records an approval wait uses.
//
// The objects' accesses are asked once per verb, resource and namespace, not per object: a release of
// 1,000 Deployments asks a handful of questions. A role limited to some names (resourceNames) is refused
// such a question; Named then lists the questions to ask about each object instead.
func ReleaseAccess(ns string, objects []Object, approval bool) []Access {
	var out []Access
	seen := map[Access]bool{}
	add := func(a Access) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, o := range objects {
		for _, a := range objectAccess(o) {
			a.Name = ""
			add(a)
		}
	}
	// Records (Secrets) and the lock (a Lease) live in the release's namespace.
	for _, v := range []string{"get", "list", "create", "update"} {
		add(Access{Verb: v, Resource: "secrets", Namespace: ns, For: ForDeploy})
	}
	if approval {
		add(Access{Verb: "watch", Resource: "secrets", Namespace: ns, For: ForDeploy})
	}
	for _, v := range []string{"get", "create", "update", "delete"} {
		add(Access{Verb: v, Group: "coordination.k8s.io", Resource: "leases", Namespace: ns, For: ForDeploy})
	}
	// Tracking watches workloads and what they own in every namespace holding a workload. A rollback
	// tracks the same things, so these are deploy needs.
	tracked := map[string]bool{}
	for _, o := range objects {
		if o.Workload && !tracked[o.Namespace] {
			tracked[o.Namespace] = true
			for _, r := range []Resource{{"apps", "deployments"}, {"apps", "statefulsets"}, {"apps", "daemonsets"}, {"apps", "replicasets"}, {"batch", "jobs"}, {"", "pods"}, {"", "events"}} {
				for _, v := range []string{"list", "watch"} {
					add(Access{Verb: v, Group: r.Group, Resource: r.Resource, Namespace: o.Namespace, For: ForDeploy})
				}
			}
		}
	}
	return out
}

// objectAccess is what a release needs on one of its objects: get and patch to deploy it; to roll it back,
// update when it existed (replaced by its previous state), delete when the release creates it.
func objectAccess(o Object) []Access {
	base := Access{Group: o.Group, Resource: o.Resource.Resource, Namespace: o.Namespace, Name: o.Name}
	get, patch, back := base, base, base
	get.Verb, get.For = "get", ForDeploy
	patch.Verb, patch.For = "patch", ForDeploy
	back.For, back.Verb = ForRollback, "delete"
	if o.Exists {
		back.Verb = "update"
	}
	return []Access{get, patch, back}
}

// Named expands an access of ReleaseAccess that names no object into the same access for each object of
// the release it covers. It returns nil for accesses that are not about the release's objects (records,
// the lock, tracking).
func Named(a Access, objects []Object) []Access {
	if a.Name != "" {
		return nil
	}
	var out []Access
	seen := map[Access]bool{}
	for _, o := range objects {
		for _, oa := range objectAccess(o) {
			named := oa
			oa.Name = ""
			if oa == a && !seen[named] {
				seen[named] = true
				out = append(out, named)
			}
		}
	}
	return out
}

// Refusal explains accesses a run lacks, naming whether the deploy itself or only its rollback would fail.
func Refusal(missing []Access) error {
	if len(missing) == 0 {
		return nil
	}
	var deploy, rollback []string
	for _, a := range missing {
		s := a.Verb + " on " + Resource{Group: a.Group, Resource: a.Resource}.String()
		if a.Namespace != "" {
			s += " in ns " + a.Namespace
		}
		if a.For == ForDeploy {
			deploy = append(deploy, s)
		} else {
			rollback = append(rollback, s)
		}
	}
	if len(deploy) > 0 {
		return fmt.Errorf("the identity cannot deploy this release: missing %s; see rollguard rbac", join(deploy))
	}
	return fmt.Errorf("the identity can deploy but could not roll back: missing %s; see rollguard rbac", join(rollback))
}

// join lists distinct items in a stable order.
func join(items []string) string {
	seen := map[string]bool{}
	var out []string
	for _, s := range items {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
