// Command sandbox builds and runs rollguard's sandbox control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok as plain local processes).
//
//	sandbox build [--real-node]        build the binaries into the cache (once, minutes)
//	sandbox up [--dir D] [--real-node] start a cluster that keeps running; prints its kubeconfig
//	sandbox down [--dir D]             stop it
//	sandbox kubeconfig [--dir D]       print the kubeconfig path
//	sandbox run [--dir D] -- CMD ...   start, run CMD with KUBECONFIG set, stop; exit with CMD's code
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/rollguard/rollguard/sandbox"
)

const usage = `usage: sandbox <command> [flags]

commands:
  build                      build the control-plane binaries into the cache (once; minutes);
                             with --real-node also kubelet, containerd and runc
  kubectl                    build kubectl of the same version into the cache (once) and print its path
  up [--dir D]               start a cluster that keeps running after this command; prints its kubeconfig
  down [--dir D]             stop the cluster started by up
  kubeconfig [--dir D]       print the kubeconfig path of the cluster in D
  run [--dir D] -- CMD ...   start a cluster, run CMD with KUBECONFIG set, stop it; exit with CMD's code

flags (up, down, kubeconfig, run):
  --dir D      work directory (default <user cache>/rollguard/sandbox/run)
  --nodes N    simulated nodes (default 2)
  --port P     kube-apiserver port on 127.0.0.1 (default: a free port)
  --real-node  add a real node (kubelet + containerd + runc, node "localhost") and a local registry
               beside the kwok nodes; needs root (see docs/sandbox.md)
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	dir := fs.String("dir", "", "work directory")
	nodes := fs.Int("nodes", 2, "simulated nodes")
	port := fs.Int("port", 0, "kube-apiserver port")
	realNode := fs.Bool("real-node", false, "add a real node")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *dir == "" {
		d, err := defaultDir()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		*dir = d
	}
	opts := sandbox.Options{Dir: *dir, Nodes: *nodes, APIServerPort: *port, RealNode: *realNode}

	var err error
	switch args[0] {
	case "build":
		var b sandbox.Binaries
		if b, err = sandbox.EnsureBinaries(ctx, opts); err == nil {
			fmt.Printf("etcd                     %s\nkube-apiserver           %s\nkube-controller-manager  %s\nkube-scheduler           %s\nkwok                     %s\n",
				b.Etcd, b.APIServer, b.ControllerManager, b.Scheduler, b.Kwok)
		}
		if err == nil && *realNode {
			var n sandbox.RealNodeBinaries
			if n, err = sandbox.EnsureRealNodeBinaries(ctx, opts); err == nil {
				fmt.Printf("kubelet                  %s\ncontainerd               %s\ncontainerd-shim-runc-v2  %s\nrunc                     %s\n",
					n.Kubelet, n.Containerd, n.Shim, n.Runc)
			}
		}
	case "kubectl":
		var p string
		if p, err = sandbox.EnsureKubectl(ctx, opts); err == nil {
			fmt.Println(p)
		}
	case "up":
		opts.Detach = true
		var c *sandbox.Cluster
		if c, err = sandbox.Start(ctx, opts); err == nil {
			fmt.Printf("sandbox is up; stop it with: sandbox down --dir %s\nexport KUBECONFIG=%s\n", c.Dir, c.Kubeconfig)
			if *realNode {
				var app string
				if app, err = c.PushTestApp(ctx, "1.0.0"); err == nil {
					fmt.Printf("real node %q (nodeSelector %s=real); registry %s; test app image %s\n",
						sandbox.RealNodeName, sandbox.NodeLabel, c.RegistryHost(), app)
				}
			}
		}
	case "down":
		err = sandbox.Down(*dir)
	case "kubeconfig":
		if !sandbox.Running(*dir) {
			err = fmt.Errorf("sandbox: no cluster is running in %s; start one with `sandbox up --dir %s`", *dir, *dir)
		} else {
			fmt.Println(filepath.Join(*dir, "kubeconfig"))
		}
	case "run":
		return runCommand(ctx, opts, fs.Args())
	default:
		fmt.Fprintf(os.Stderr, "sandbox: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func runCommand(ctx context.Context, opts sandbox.Options, argv []string) int {
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "sandbox: run needs a command: sandbox run [--dir D] -- CMD ARGS...")
		return 2
	}
	c, err := sandbox.Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	// A Ctrl-C reaches CMD directly (same process group); we only wait for it, then stop the cluster.
	signal.Ignore(os.Interrupt)
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if exit.ExitCode() < 0 {
			return 128 + int(syscall.SIGINT)
		}
		return exit.ExitCode()
	default:
		fmt.Fprintf(os.Stderr, "sandbox: running %s: %v\n", argv[0], err)
		return 127
	}
}

func defaultDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("sandbox: finding the user cache directory: %w; pass --dir", err)
	}
	return filepath.Join(d, "rollguard", "sandbox", "run"), nil
}
