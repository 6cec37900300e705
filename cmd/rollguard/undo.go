package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/report"
)

func newUndoCmd(g *globals) *cobra.Command {
	u := &action.Undo{Getenv: os.Getenv}
	var out outputFlags
	cmd := &cobra.Command{
		Use:   "undo TYPE/NAME [--to-revision N | --to-image previous]",
		Short: "Roll a workload back to an earlier revision and prove it healthy",
		Long: `Undo returns a Deployment, StatefulSet or DaemonSet to an earlier revision exactly as
kubectl rollout undo does (it uses kubectl's rollback code), then follows the rollout like a deploy, fails
fast with a reason if the old revision is unhealthy too, and records the undo in the history.`,
		Example: `  rollguard undo deployment/web -n shop
  rollguard undo deployment/web --to-revision 3
  rollguard undo deployment/web --to-image previous`,
		Args: cobra.ExactArgs(1),
		RunE: out.wrap(g, "undo", func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			u.Object = args[0]
			u.Connect = g.connect
			u.Namespace = g.namespace()
			return out.track(g, &u.Watch, func() (*report.Result, error) { return u.Run(cmd.Context()) })
		}),
	}
	f := cmd.Flags()
	f.Int64Var(&u.ToRevision, "to-revision", 0, "the revision to return to (default: the one before the current)")
	f.StringVar(&u.ToImage, "to-image", "", `"previous": the newest earlier revision whose images differ from the current ones`)
	f.StringVar(&u.App, "app", "", "release name for the lock and history (default: the workload's name)")
	f.DurationVar(&u.Timeout, "timeout", 5*time.Minute, "give up on the rollout after this long")
	f.DurationVar(&u.WaitForLock, "wait-for-lock", 2*time.Minute, "how long to wait while another run holds the app's lock")
	f.DurationVar(&u.LockTTL, "lock-ttl", 30*time.Second, "how long the lock outlives a run that died")
	_ = f.MarkHidden("lock-ttl")
	out.add(f)
	addThresholdFlags(f, &u.Thresholds)
	return cmd
}
