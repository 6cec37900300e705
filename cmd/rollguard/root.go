package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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
	// concurrency is --concurrency: requests for a release's objects in flight at once.
	concurrency int
	stdout      io.Writer
	stderr      io.Writer
}

// connect opens the cluster connection described by the kubectl flags.
func (g *globals) connect(ctx context.Context) (*kube.Client, error) {
	return g.connectWith(ctx, g.kube)
}

// connectWith opens the cluster connection described by flags (an environment's context).
func (g *globals) connectWith(ctx context.Context, flags genericclioptions.RESTClientGetter) (*kube.Client, error) {
	if g.concurrency < 1 {
		return nil, exitcode.BadInputf("--concurrency must be at least 1, got %d", g.concurrency)
	}
	c, err := kube.Connect(ctx, flags)
	if err != nil {
		return nil, err
	}
	c.Concurrency = g.concurrency
	return c, nil
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
  2  release failed and was not recovered (rollback failed, declined or disabled), or the run was
     interrupted (SIGINT/SIGTERM) or superseded (its lock taken) before it knew the outcome
  3  bad input or preflight refused; nothing changed
  4  could not reach or authenticate to the cluster
  5  release failed; rollback held for an approval that a later step gives (also when interrupted
     while waiting for it)`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// A flag error is bad input: exit 3, not cobra's default path to exit 2 ("not recovered").
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		if s := suggestFlag(cmd, err); s != "" {
			return exitcode.BadInputf("%v: did you mean --%s? (see %s --help)", err, s, cmd.CommandPath())
		}
		return exitcode.BadInputf("%v (see %s --help)", err, cmd.CommandPath())
	})
	root.Version = version.String()
	root.SetVersionTemplate("rollguard {{.Version}}\n")
	// cobra leaves this 0 until it prints its own suggestions, which rollguard replaces (see unknownCommand).
	root.SuggestionsMinimumDistance = 2
	g.kube.AddFlags(root.PersistentFlags())
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "warn", "log detail on stderr: debug, info, warn or error")
	root.PersistentFlags().IntVar(&g.concurrency, "concurrency", kube.DefaultConcurrency, "how many objects of a release are validated, applied or restored at once (each group of kinds after the one it depends on: namespaces and CRDs, then configuration, then workloads...)")

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
		newDashboardCmd(g),
		newGuardCmd(g),
	)
	unknownCommands(root)
	badArgsAreBadInput(root)
	return root
}

// unknownCommands makes the root and every command group runnable, so cobra checks their arguments (a
// non-runnable group prints help for any typo and exits 0), and a mistyped command bad input: one line,
// exit 3, with cobra's suggestion folded in.
func unknownCommands(c *cobra.Command) {
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			cmd.SuggestionsMinimumDistance = 2
			hint := "see " + cmd.CommandPath() + " --help"
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				hint = "did you mean " + strings.Join(s, " or ") + "?"
			}
			return exitcode.BadInputf("unknown command %q for %s: %s", args[0], cmd.CommandPath(), hint)
		}
	}
	for _, sub := range c.Commands() {
		unknownCommands(sub)
	}
}

// suggestFlag is the command's flag nearest to the unknown one in err, or "".
func suggestFlag(cmd *cobra.Command, err error) string {
	const prefix = "unknown flag: --"
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		return ""
	}
	typed := strings.SplitN(strings.TrimPrefix(msg, prefix), "=", 2)[0]
	best, bestDist := "", 3
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		if d := editDistance(typed, f.Name); d < bestDist {
			best, bestDist = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// badArgsAreBadInput makes every command's argument check fail with exit 3, like a flag error; cobra's
// plain errors would otherwise exit 2, which pipelines read as "release failed, not recovered".
func badArgsAreBadInput(c *cobra.Command) {
	if check := c.Args; check != nil && c.HasParent() && !c.HasSubCommands() {
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
