package manifest

import (
	"slices"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// applyRank places a kind in apply order: what others depend on first (namespaces, CRDs, identities,
// configuration, storage, services), then workloads, then what points at workloads, and custom resources
// last because their CRDs, and the controllers that serve them, must exist first. Admission webhooks come
// after workloads: registered before the Service behind them is ready, they would reject everything after.
func applyRank(gk schema.GroupKind) int {
	switch gk {
	case schema.GroupKind{Kind: "Namespace"}:
		return 0
	case schema.GroupKind{Kind: "ResourceQuota"}, schema.GroupKind{Kind: "LimitRange"},
		schema.GroupKind{Group: "networking.k8s.io", Kind: "NetworkPolicy"},
		schema.GroupKind{Group: "scheduling.k8s.io", Kind: "PriorityClass"}:
		return 1
	case schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:
		return 2
	case schema.GroupKind{Kind: "ServiceAccount"}:
		return 3
	case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"},
		schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "Role"}:
		return 4
	case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"},
		schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}:
		return 5
	case schema.GroupKind{Kind: "ConfigMap"}, schema.GroupKind{Kind: "Secret"}:
		return 6
	case schema.GroupKind{Group: "storage.k8s.io", Kind: "StorageClass"}, schema.GroupKind{Kind: "PersistentVolume"}:
		return 7
	case schema.GroupKind{Kind: "PersistentVolumeClaim"}:
		return 8
	case schema.GroupKind{Kind: "Service"}, schema.GroupKind{Kind: "Endpoints"},
		schema.GroupKind{Group: "discovery.k8s.io", Kind: "EndpointSlice"}:
		return 9
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}, schema.GroupKind{Group: "apps", Kind: "StatefulSet"},
		schema.GroupKind{Group: "apps", Kind: "DaemonSet"}, schema.GroupKind{Group: "apps", Kind: "ReplicaSet"},
		schema.GroupKind{Group: "batch", Kind: "Job"}, schema.GroupKind{Group: "batch", Kind: "CronJob"},
		schema.GroupKind{Kind: "ReplicationController"}, schema.GroupKind{Kind: "Pod"}, schema.GroupKind{Kind: "PodTemplate"}:
		return 10
	case schema.GroupKind{Group: "networking.k8s.io", Kind: "IngressClass"}:
		return 11
	case schema.GroupKind{Group: "networking.k8s.io", Kind: "Ingress"}:
		return 12
	case schema.GroupKind{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"},
		schema.GroupKind{Group: "policy", Kind: "PodDisruptionBudget"}:
		return 13
	case schema.GroupKind{Group: "apiregistration.k8s.io", Kind: "APIService"},
		schema.GroupKind{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"},
		schema.GroupKind{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}:
		return 14
	}
	return 15
}

// Rank is a kind's place in apply order (lower first); kinds of the same rank do not depend on each
// other. For objects that are not manifest Objects (a release record's states).
func Rank(gk schema.GroupKind) int { return applyRank(gk) }

// Order returns the objects in apply order (see applyRank); objects of the same rank keep their input
// order. The input slice is not changed.
func Order(objs []*Object) []*Object {
	out := slices.Clone(objs)
	slices.SortStableFunc(out, func(a, b *Object) int {
		return applyRank(a.groupKind()) - applyRank(b.groupKind())
	})
	return out
}

// DeleteOrder returns the objects in the reverse of apply order, for deleting a release: custom resources
// before their CRDs, workloads before their configuration, namespaces last.
func DeleteOrder(objs []*Object) []*Object {
	out := Order(objs)
	slices.Reverse(out)
	return out
}

// Groups splits objects in apply order (Order) into runs of the same rank: the objects of one group do
// not depend on each other and may be applied at once, while a group must be in place before the next
// (namespaces and CRDs before what lives in them, configuration before the workloads reading it).
func Groups(ordered []*Object) [][]*Object {
	var out [][]*Object
	for i, o := range ordered {
		if i == 0 || applyRank(o.groupKind()) != applyRank(ordered[i-1].groupKind()) {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], o)
	}
	return out
}
