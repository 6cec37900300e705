// Package benchenv prepares what every benchmark runs beside its sandbox cluster: a rollguard built from
// this tree and the sandbox's kubectl of the cluster's version, so both sides of a comparison are the
// ones the benchmark names.
package benchenv

import (
	"context"
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
