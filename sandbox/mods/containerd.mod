// Wrapper module: builds containerd and its runc shim for the sandbox's real node.
module rollguard.local/sandbox/containerd

go 1.26.6

require github.com/containerd/containerd/v2 v2.4.2
