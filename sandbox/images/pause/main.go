// Command pause is the real node's pod sandbox process: it holds the pod's namespaces and waits for
// SIGTERM or SIGINT. The sandbox builds it into the pause image it pins in containerd.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
