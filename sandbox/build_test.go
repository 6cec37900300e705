package sandbox_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollguard/rollguard/sandbox"
)

// TestBuildIntoEmptyCache builds every binary into an empty cache, as on a fresh machine, and starts a
// cluster from them. On a machine whose cache is already full the normal path never builds, so without this
// test a broken build (etcd once came out named "server") would surface only on a new CI machine. With the
// Go build cache warm it costs about half a minute.
func TestBuildIntoEmptyCache(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every sandbox binary")
	}
	ctx := context.Background()
	cache := t.TempDir()
	bins, err := sandbox.EnsureBinaries(ctx, sandbox.Options{CacheDir: cache, Progress: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{bins.Etcd, bins.APIServer, bins.ControllerManager, bins.Scheduler, bins.Kwok} {
		if rel, err := filepath.Rel(cache, p); err != nil || filepath.IsAbs(rel) || rel[0] == '.' {
			t.Errorf("%s is not in the new cache %s", p, cache)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s: not an executable file (%v)", p, err)
		}
	}
	c, err := sandbox.Start(ctx, sandbox.Options{CacheDir: cache, NoBuild: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	nodes, err := c.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) == 0 {
		t.Fatalf("cluster from the new binaries has no nodes (%v)", err)
	}
}
