package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollguard/rollguard/sandbox"
)

func TestBadInputGivesClearErrors(t *testing.T) {
	t.Parallel()
	cached, err := sandbox.EnsureBinaries(context.Background(), sandbox.Options{NoBuild: true})
	if err != nil {
		t.Fatal(err)
	}
	fileAsDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(fileAsDir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := t.TempDir()
	bad := filepath.Join(corrupt, "kube-"+sandbox.KubeVersion, "kube-apiserver")
	if err := os.MkdirAll(filepath.Dir(bad), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, bytes.Repeat([]byte{0}, 2<<20), 0o755); err != nil {
		t.Fatal(err)
	}
	failing := filepath.Join(t.TempDir(), "kube-scheduler")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\necho 'Error: unknown flag: --boom' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name string
		opts sandbox.Options
		want []string
	}{
		{"cache dir is a file", sandbox.Options{CacheDir: fileAsDir, NoBuild: true},
			[]string{fileAsDir, "is not a directory"}},
		{"binaries not built", sandbox.Options{CacheDir: t.TempDir(), NoBuild: true},
			[]string{"is not built", "sandbox build"}},
		{"corrupt cached binary", sandbox.Options{CacheDir: corrupt, NoBuild: true},
			[]string{bad, "not an ELF executable", "delete it"}},
		{"busy apiserver port", sandbox.Options{APIServerPort: busyPort, Binaries: cached},
			[]string{"kube-apiserver", "127.0.0.1:" + strconv.Itoa(busyPort), "already in use"}},
		{"component fails to start", sandbox.Options{Binaries: withScheduler(cached, failing)},
			[]string{"kube-scheduler exited during start", "logs/kube-scheduler.log", "unknown flag: --boom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Progress = io.Discard
			c, err := sandbox.Start(context.Background(), tt.opts)
			if err == nil {
				_ = c.Stop()
				t.Fatal("Start succeeded; want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func withScheduler(b sandbox.Binaries, scheduler string) sandbox.Binaries {
	b.Scheduler = scheduler
	return b
}

// TestRestartAndStop runs its own cluster: it restarts the apiserver and checks Stop leaves no process.
func TestRestartAndStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	c, err := sandbox.Start(ctx, sandbox.Options{Dir: dir, Nodes: 1, Progress: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	pids := c.PIDs()
	if len(pids) != 5 {
		t.Fatalf("PIDs() = %v; want 5 components", pids)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err != nil {
		t.Errorf("state file: %v", err)
	}
	before := c.PIDs()[sandbox.APIServer]
	if err := c.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if after := c.PIDs()[sandbox.APIServer]; after == before {
		t.Errorf("apiserver pid %d did not change on restart", after)
	}
	if _, err := c.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("listing nodes after restart: %v", err)
	}
	for _, comp := range []string{sandbox.Etcd, sandbox.APIServer, sandbox.ControllerManager, sandbox.Scheduler, sandbox.Kwok} {
		if fi, err := os.Stat(c.Logs(comp)); err != nil || fi.Size() == 0 {
			t.Errorf("log of %s: %v", comp, err)
		}
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	pids[sandbox.APIServer+"-old"] = before
	for name, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s (pid %d) still exists after Stop", name, pid)
		}
	}
	if sandbox.Running(dir) {
		t.Error("Running reports the stopped cluster as running")
	}
}
