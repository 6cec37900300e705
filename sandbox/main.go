package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// Main runs a test package against one sandbox cluster: call it from TestMain.
//
//	var cluster *sandbox.Cluster
//	func TestMain(m *testing.M) { sandbox.Main(m, sandbox.Options{}, &cluster) }
//
// It starts the cluster (printing the error and exiting 1 if that fails), stores it in *cluster, runs the
// tests, stops the cluster and exits with the tests' code. When tests fail, a temporary work dir with the
// component logs is kept and its path printed. SIGINT/SIGTERM stop the cluster before exiting.
func Main(m *testing.M, opts Options, cluster **Cluster) {
	os.Exit(run(m, opts, cluster))
}

func run(m *testing.M, opts Options, cluster **Cluster) int {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*cluster = c
	finished := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// m.Run never returns once we are interrupted: stop the cluster here, then exit.
			fmt.Fprintln(os.Stderr, "sandbox: interrupted; stopping the cluster")
			_ = c.Stop()
			os.Exit(130)
		case <-finished:
		}
	}()
	code := m.Run()
	close(finished)
	if code != 0 && c.ownDir {
		c.mu.Lock()
		c.keep = true
		c.mu.Unlock()
		fmt.Fprintf(os.Stderr, "sandbox: tests failed; component logs kept in %s\n", c.Logs("*"))
	}
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}
