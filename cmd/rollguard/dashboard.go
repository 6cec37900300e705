package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/config"
	"github.com/rollguard/rollguard/internal/dashboard"
)

func newDashboardCmd(g *globals) *cobra.Command {
	var addr, configFile string
	var open, allowRemote bool
	var refresh time.Duration
	s := &dashboard.Server{Getenv: os.Getenv}
	cmd := &cobra.Command{
		Use:   "dashboard [--address 127.0.0.1:8080] [--open]",
		Short: "Serve a local web UI: every app's release and health, timelines, live rollouts, approvals",
		Long: `Dashboard serves a web UI on this machine that reads the cluster with your kubeconfig, so your own RBAC
decides what you see and whether you may approve: an overview of every app and environment (release,
outcome, health, images and digests, drift, when and by whom), each app's timeline, rollouts in progress
updating live, and the releases waiting for a decision with Approve and Reject buttons. A decision is
recorded under your Kubernetes identity, exactly as "rollguard approve|reject" records it.

It listens on loopback only unless --allow-remote is given with another --address: whoever reaches it acts
with your identity. With rollguard.yaml in the working directory (or --config) its environments and drift
are shown too. -n limits the dashboard to one namespace.`,
		Example: `  rollguard dashboard --open
  rollguard dashboard --address 127.0.0.1:9090 --context prod -n shop`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s.Connect, s.Namespace, s.Log, s.Refresh = g.connect, g.namespace(), g.logger(), refresh
			if configFile != "" || fileExists(config.DefaultFile) {
				if configFile == "" {
					configFile = config.DefaultFile
				}
				cfg, err := config.Load(configFile)
				if err != nil {
					return err
				}
				s.Envs = &action.Envs{Config: cfg, Connect: envConnector(g, cfg)}
			}
			// The cluster must answer before the page is offered (exit 4 otherwise).
			if _, err := g.connect(cmd.Context()); err != nil {
				return err
			}
			if !dashboard.IsLoopback(addr) && allowRemote {
				fmt.Fprintf(g.stderr, "WARNING: serving on %s, beyond this machine: anyone who reaches it sees what your identity sees and approves as you\n", addr)
			}
			return dashboard.Serve(cmd.Context(), s, addr, allowRemote, func(url string) {
				fmt.Fprintf(g.stderr, "rollguard dashboard on %s (Ctrl-C stops it)\n", url)
				if open {
					openBrowser(g, url)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "address", "127.0.0.1:8080", "`HOST:PORT` to listen on (loopback unless --allow-remote)")
	f.BoolVar(&open, "open", false, "open the dashboard in the default browser")
	f.BoolVar(&allowRemote, "allow-remote", false, "allow a non-loopback --address (whoever reaches it acts with your identity)")
	f.StringVar(&configFile, "config", "", "rollguard config `FILE` whose environments to show (default: rollguard.yaml when present)")
	f.DurationVar(&refresh, "refresh", 2*time.Second, "how often live pages re-read the cluster")
	f.DurationVar(&s.Timeout, "timeout", 5*time.Minute, "when the dashboard rolls a held release back itself: give up on the restored rollout after this long")
	return cmd
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, os.ErrNotExist)
}

// openBrowser asks the desktop to open url; failing that, the printed URL is enough.
func openBrowser(g *globals, url string) {
	var c *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		c = exec.Command("open", url)
	case "windows":
		c = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		c = exec.Command("xdg-open", url)
	}
	if err := c.Start(); err != nil {
		fmt.Fprintf(g.stderr, "could not open a browser (%v); open %s yourself\n", err, url)
		return
	}
	go func() { _ = c.Wait() }()
}
