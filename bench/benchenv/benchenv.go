// Package benchenv prepares what every benchmark runs beside its sandbox cluster: a rollguard built from
// this tree and the sandbox's kubectl of the cluster's version, so both sides of a comparison are the
// ones the benchmark names.
package benchenv

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/rollguard/rollguard/sandbox"
)

// Tools builds rollguard into a new temporary folder named after prefix and finds (building once) the
// sandbox's kubectl. remove deletes the folder; it is a no-op when err is set. Benchmarks run in their
// package folder, so cmd/rollguard is two levels up.
func Tools(ctx context.Context, prefix string) (rollguard, kubectl string, remove func(), err error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", "", func() {}, err
	}
	remove = func() { os.RemoveAll(dir) }
	rollguard = filepath.Join(dir, "rollguard")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", rollguard, "../../cmd/rollguard").CombinedOutput(); err != nil {
		remove()
		return "", "", func() {}, fmt.Errorf("building rollguard: %w\n%s", err, out)
	}
	if kubectl, err = sandbox.EnsureKubectl(ctx, sandbox.Options{Progress: os.Stderr}); err != nil {
		remove()
		return "", "", func() {}, err
	}
	return rollguard, kubectl, remove, nil
}

// Benchmarking reports whether the test binary was asked to run benchmarks: `go test ./...` without
// -bench runs none, and then nothing needs a cluster.
func Benchmarking() bool {
	f := flag.Lookup("test.bench")
	return f != nil && f.Value.String() != ""
}

// Env is what a benchmark runs against: the tools of Tools and a sandbox cluster.
type Env struct {
	Rollguard, Kubectl string
	Cluster            *sandbox.Cluster
	remove             func()
}

// Start builds the tools (see Tools) and starts a sandbox with opts; Stop undoes both.
func Start(ctx context.Context, prefix string, opts sandbox.Options) (*Env, error) {
	rollguard, kubectl, remove, err := Tools(ctx, prefix)
	if err != nil {
		return nil, err
	}
	if opts.Progress == nil {
		opts.Progress = os.Stderr
	}
	c, err := sandbox.Start(ctx, opts)
	if err != nil {
		remove()
		return nil, err
	}
	return &Env{Rollguard: rollguard, Kubectl: kubectl, Cluster: c, remove: remove}, nil
}

// Stop stops the cluster and removes the tools.
func (e *Env) Stop() {
	_ = e.Cluster.Stop()
	e.remove()
}
