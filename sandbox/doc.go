// Package sandbox runs a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler) as local processes, with kwok playing the kubelet, for rollguard's tests and demo.
// The binaries are built from the Go module proxy into a per-user cache keyed by version.
package sandbox
