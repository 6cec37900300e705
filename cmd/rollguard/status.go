package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/report"
)

func newStatusCmd(g *globals) *cobra.Command {
	s := &action.Status{}
	var out outputFlags
	cmd := &cobra.Command{
		Use:   "status TYPE/NAME",
		Short: "Watch a rollout started by anything else, failing as soon as the failure is visible",
		Long: `Status follows the rollout of a Deployment, StatefulSet or DaemonSet (or a Job to completion), like kubectl rollout status,
but reports a failing rollout (image pull errors, crash loops, readiness failures, quota...) with its reason
and evidence as soon as it is visible instead of waiting for the timeout.`,
		Example: `  rollguard status deployment/web -n shop --timeout 2m`,
		Args:    cobra.ExactArgs(1),
		RunE: out.wrap(g, "status", func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			s.Object = args[0]
			s.Connect = g.connect
			s.Namespace = g.namespace()
			return out.track(g, &s.Watch, func() (*report.Result, error) { return s.Run(cmd.Context()) })
		}),
	}
	f := cmd.Flags()
	f.DurationVar(&s.Timeout, "timeout", 5*time.Minute, "give up on a rollout that has not finished after this long")
	out.add(f)
	addThresholdFlags(f, &s.Thresholds)
	return cmd
}
