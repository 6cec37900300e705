// Command rollguard deploys Kubernetes releases, detects failing rollouts early, explains them and heals them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rollguard/rollguard/internal/exitcode"
)

func main() {
	// The first SIGINT/SIGTERM cancels ctx: the running action stops changing the cluster, records where it
	// stopped, writes its reports and exits with the code of that state. A second one kills at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	root := newRootCmd(os.Stdout, os.Stderr)
	if name := pluginName(os.Args[0]); name != "" {
		asPlugin(root, name)
	}
	stopProfile := startProfile()
	err := root.ExecuteContext(ctx)
	stop()
	stopProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
	}
	os.Exit(exitcode.Of(err))
}
