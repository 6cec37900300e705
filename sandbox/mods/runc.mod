// Wrapper module: builds runc (with seccomp) for the sandbox's real node.
module rollguard.local/sandbox/runc

go 1.26.0

require github.com/opencontainers/runc v1.5.2
