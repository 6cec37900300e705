package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// kubectlGroup builds kubectl from the same wrapper module as the control plane. It is not part of
// EnsureBinaries: only benchmarks, which compare rollguard with `kubectl rollout status`, need it.
func kubectlGroup() buildGroup {
	return buildGroup{
		dir: "kubectl-" + KubeVersion, bins: []string{"kubectl"}, pkgs: []string{"k8s.io/kubernetes/cmd/kubectl"},
		mod: kubeMod, sum: kubeSum, version: KubeVersion, estimate: "about 2 minutes on 2 cores",
	}
}

// EnsureKubectl returns the path of a kubectl matching the sandbox's Kubernetes version, building it into
// the cache first when it is missing.
func EnsureKubectl(ctx context.Context, opts Options) (string, error) {
	cache, err := CacheDir(opts)
	if err != nil {
		return "", err
	}
	g := kubectlGroup()
	p := filepath.Join(cache, g.dir, "kubectl")
	if ok, err := checkCachedBinary(p); err != nil || ok {
		return p, err
	}
	if opts.NoBuild {
		return "", fmt.Errorf("sandbox: kubectl %s is not built (missing %s)", KubeVersion, p)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("sandbox: creating cache dir: %w", err)
	}
	unlock, err := lockCache(ctx, cache, progress(opts))
	if err != nil {
		return "", err
	}
	defer unlock()
	if ok, err := checkCachedBinary(p); err != nil || ok {
		return p, err
	}
	return p, build(ctx, cache, g, progress(opts))
}
