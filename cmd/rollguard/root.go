package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/version"
)

// globals are the flags every command shares. Kubernetes flags come from cli-runtime so kubeconfig exec
// credential plugins (kubelogin, aws, gke-gcloud-auth-plugin) work exactly as they do for kubectl.
type globals struct {
	kube     *genericclioptions.ConfigFlags
	logLevel string
	stdout   io.Writer
	stderr   io.Writer
}

// connect opens the cluster connection described by the kubectl flags.
func (g *globals) connect(ctx context.Context) (*kube.Client, error) {
	return kube.Connect(ctx, g.kube)
}

// namespace is -n when given, else empty (the action falls back to the kubeconfig context's namespace).
func (g *globals) namespace() string {
	if g.kube.Namespace != nil {
		return *g.kube.Namespace
	}
	return ""
}

// logger writes structured logs to stderr at --log-level.
func (g *globals) logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		level = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{kube: genericclioptions.NewConfigFlags(true), stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "rollguard",
		Short: "Self-healing Kubernetes deployments",
		Long: `rollguard deploys a release, watches it, detects a failing rollout within seconds and says why,
rolls it back, proves the rollback healthy and keeps an auditable history.

Exit codes:
  0  success
  1  release failed and was rolled back healthy
  2  release failed and was not recovered (rollback failed, declined or disabled)
  3  bad input or preflight refused; nothing changed
  4  could not reach or authenticate to the cluster
  5  release failed; rollback held for an approval that a later step gives`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// A flag error is bad input: exit 3, not cobra's default path to exit 2 ("not recovered").
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return exitcode.BadInputf("%v (see --help)", err)
	})
	g.kube.AddFlags(root.PersistentFlags())
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "warn", "log detail on stderr: debug, info, warn or error")

	root.AddCommand(
		newVersionCmd(g),
		newImagesCmd(g),
		newDeployCmd(g),
		newStatusCmd(g),
		newRollbackCmd(g),
		newUndoCmd(g),
		newDecideCmd(g, true),
		newDecideCmd(g, false),
		newHistoryCmd(g),
		newUnlockCmd(g),
		newPromoteCmd(g),
		newEnvsCmd(g),
		newAccessCmd(g),
		newRBACCmd(g),
	)
	// Runnable, so cobra checks its arguments (a non-runnable root prints help for any typo and exits 0).
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	// A mistyped command is bad input: one line, exit 3, with cobra's suggestion folded in.
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		hint := "see rollguard --help"
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			hint = "did you mean " + strings.Join(s, " or ") + "?"
		}
		return exitcode.BadInputf("unknown command %q: %s", args[0], hint)
	}
	badArgsAreBadInput(root)
	return root
}

// badArgsAreBadInput makes every command's argument check fail with exit 3, like a flag error; cobra's
// plain errors would otherwise exit 2, which pipelines read as "release failed, not recovered".
func badArgsAreBadInput(c *cobra.Command) {
	if check := c.Args; check != nil && c.HasParent() {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return exitcode.BadInputf("%s: %v (see %s --help)", cmd.CommandPath(), err, cmd.CommandPath())
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		badArgsAreBadInput(sub)
	}
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print rollguard's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(g.stdout, "rollguard", version.String())
			return err
		},
	}
}
