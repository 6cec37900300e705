package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/report"
)

func newRollbackCmd(g *globals) *cobra.Command {
	r := &action.Rollback{}
	var out outputFlags
	cmd := &cobra.Command{
		Use:   "rollback [RELEASE | --last --app NAME]",
		Short: "Restore a recorded release's previous state and prove it healthy",
		Long: `Rollback restores every object a release changed to its recorded previous state (ConfigMaps and
Secrets included), deletes the objects it created, and follows the restored workloads until they are healthy.
It is the later pipeline step after "rollguard deploy --on-failure=hold" (exit 5), and it finishes a
rollback that a killed run left half done.`,
		Example: `  rollguard rollback web.v7 -n shop
  rollguard rollback --last --app web -n shop`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			if len(args) == 1 {
				r.Release = args[0]
			}
			r.Connect = g.connect
			r.Namespace = g.namespace()
			return out.track(g, &r.Watch, func() (*report.Result, error) { return r.Run(cmd.Context()) })
		},
	}
	f := cmd.Flags()
	f.BoolVar(&r.Last, "last", false, "roll back the newest release of --app")
	f.StringVar(&r.App, "app", "", "the app whose newest release --last rolls back")
	f.DurationVar(&r.Timeout, "timeout", 5*time.Minute, "give up on the restored rollout after this long")
	f.DurationVar(&r.WaitForLock, "wait-for-lock", 2*time.Minute, "how long to wait while another run holds the app's lock")
	f.DurationVar(&r.LockTTL, "lock-ttl", 30*time.Second, "how long the lock outlives a run that died")
	_ = f.MarkHidden("lock-ttl")
	out.add(f)
	addThresholdFlags(f, &r.Thresholds)
	return cmd
}
