// Package sandbox runs a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler) as local processes, with kwok playing the kubelet for every node, for rollguard's
// tests and demo. Deployments, ReplicaSets, scheduling, admission (ResourceQuota, LimitRange,
// ServiceAccount), RBAC and events are real; only pod lifecycles are simulated, by the kwok stages in
// stages/*.yaml.
//
// The binaries are built once from the Go module proxy (wrapper modules in mods/, checksums pinned)
// into a per-user cache keyed by version; see EnsureBinaries and CacheDir.
//
// Tests use one cluster per package and one namespace per test:
//
//	var cluster *sandbox.Cluster
//
//	func TestMain(m *testing.M) { sandbox.Main(m, sandbox.Options{}, &cluster) }
//
//	func TestX(t *testing.T) {
//		ns := cluster.Namespace(t)
//		... cluster.Client() ...
//	}
//
// Failure scenarios are chosen with the pod label ScenarioLabel (see the Scenario* constants).
package sandbox
