package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/config"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/report"
)

func newPromoteCmd(g *globals) *cobra.Command {
	p := &action.Promote{Getenv: os.Getenv}
	var out outputFlags
	var configFile string
	cmd := &cobra.Command{
		Use:   "promote --from ENV --to ENV",
		Short: "Deploy to an environment exactly what runs healthy in the one before it, pinned by digest",
		Long: `Promote takes the source environment's current release, refuses unless it succeeded and its workloads
run healthy now (unchanged since), resolves every image the source runs to its digest, and deploys the
target environment's manifests with each image pinned by digest, like deploy --env (tracking, on-failure
policy, access policy). A tag pushed again later cannot change what is promoted.

The target must be next after the source in rollguard.yaml's promotion order; --force promotes anyway and
the release record says so. The target's record names who promoted, from which environment and release.`,
		Example: `  rollguard promote --from staging --to production
  rollguard promote --from dev --to production --force --config deploy/rollguard.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: out.wrap(g, "promote", func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			fl := cmd.Flags()
			// Unset flags leave the target environment's settings in force.
			if !fl.Changed("timeout") {
				p.Timeout = 0
			} else if p.Timeout <= 0 {
				return exitcode.BadInputf("--timeout must be positive, got %s", p.Timeout)
			}
			if !fl.Changed("approval-timeout") {
				p.ApprovalTimeout = 0
			}
			cfg, err := config.Load(configFile)
			if err != nil {
				return err
			}
			p.Config = cfg
			p.Connect = envConnector(g, cfg)
			if p.Resolve, err = action.RegistryResolver(); err != nil {
				return err
			}
			p.Notice = g.stderr
			return out.track(g, &p.Watch, func() (*report.Result, error) { return p.Run(cmd.Context()) })
		}),
	}
	f := cmd.Flags()
	f.StringVar(&p.From, "from", "", "source environment `NAME`")
	f.StringVar(&p.To, "to", "", "target environment `NAME`")
	f.BoolVar(&p.Force, "force", false, "promote even when the target is not next after the source in the promotion order (recorded)")
	f.StringVar(&configFile, "config", config.DefaultFile, "rollguard config `FILE`")
	f.DurationVar(&p.Timeout, "timeout", 5*time.Minute, "override the target environment's timeout")
	f.StringVar(&p.OnFailure, "on-failure", "", "override the target environment's on-failure policy: rollback, approve, hold or none")
	f.DurationVar(&p.ApprovalTimeout, "approval-timeout", 24*time.Hour, "override the target environment's approval timeout")
	f.StringVar(&p.ApprovalTimeoutAction, "approval-timeout-action", "", "override the target environment's approval timeout action: rollback or reject")
	f.DurationVar(&p.WaitForLock, "wait-for-lock", 2*time.Minute, "how long to wait while another run deploys or rolls back the app in the target")
	out.add(f)
	addThresholdFlags(f, &p.Thresholds)
	return cmd
}
