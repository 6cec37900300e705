package track

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
)

// lastApplied is kubectl's copy of the whole manifest: often the biggest field of an object, never read.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// Trim drops, before an object enters a cache, what tracking and the guard never read: managedFields, kubectl's
// last-applied copy, and the bulk of pod specs (volumes, env) that no diagnosis rule looks at. Records are
// written from objects read from the API, never from the caches, so nothing trimmed is ever restored.
// Less to hold is less for the garbage collector to scan: a release of 1,000 workloads caches thousands of
// pods.
func Trim(in any) (any, error) {
	if m, err := meta.Accessor(in); err == nil {
		if m.GetManagedFields() != nil {
			m.SetManagedFields(nil)
		}
		if a := m.GetAnnotations(); a[lastApplied] != "" {
			delete(a, lastApplied)
			m.SetAnnotations(a)
		}
	}
	if p, ok := in.(*corev1.Pod); ok {
		p.Spec.Volumes = nil
		for i := range p.Spec.Containers {
			p.Spec.Containers[i].Env, p.Spec.Containers[i].EnvFrom, p.Spec.Containers[i].VolumeMounts = nil, nil, nil
		}
		for i := range p.Spec.InitContainers {
			p.Spec.InitContainers[i].Env, p.Spec.InitContainers[i].EnvFrom, p.Spec.InitContainers[i].VolumeMounts = nil, nil, nil
		}
	}
	return in, nil
}
