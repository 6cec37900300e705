// Wrapper module: builds kwok (the simulated kubelet) from the Go module proxy with checksums pinned in kwok.sum.
module rollguard.local/sandbox/kwok

go 1.26.0

require sigs.k8s.io/kwok v0.8.0
