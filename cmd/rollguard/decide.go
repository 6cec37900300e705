package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/exitcode"
)

// newDecideCmd is `rollguard approve` or `rollguard reject`: the decision on the rollback of a failed
// release that waits for one (--on-failure=approve or hold).
func newDecideCmd(g *globals, approve bool) *cobra.Command {
	d := &action.Decision{Approve: approve, Getenv: os.Getenv}
	var out outputFlags
	var nf notifyFlags
	verb, short := "reject", "Decline the rollback of a failed release that waits for a decision"
	long := short + `: the failed release stays as it is.

When a deploy running with --on-failure=approve waits for the decision, it is recorded (with who and when)
and that deploy ends with exit 2. When none waits (the release was held with --on-failure=hold, or the
waiting run died), reject closes the release as rejected here. Nothing in the cluster changes.`
	if approve {
		verb, short = "approve", "Approve the rollback of a failed release that waits for a decision"
		long = short + `.

When a deploy running with --on-failure=approve waits for the decision, it is recorded (with who and when)
and that deploy rolls back. When none waits (the release was held with --on-failure=hold, or the waiting
run was interrupted or died), approve rolls the release back here and proves the rollback healthy (exit 0,
or 2 if the rollback is unhealthy).`
	}
	var env envScope
	cmd := &cobra.Command{
		Use:     verb + " RELEASE",
		Short:   short,
		Long:    long,
		Example: "  rollguard " + verb + " web.v7 -n shop\n  rollguard " + verb + " web.v7 --env production",
		Args:    cobra.ExactArgs(1),
		RunE: out.wrap(g, verb, func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			var err error
			if d.Notify, err = nf.notifier(g, nil); err != nil {
				return err
			}
			defer d.Notify.Flush()
			d.Release = args[0]
			d.Connect = g.connect
			ns, err := env.namespace(cmd, g)
			if err != nil {
				return err
			}
			d.Namespace = ns
			d.Log = g.logger()
			progress := progressPrinter(g.stderr)
			d.OnUpdate, d.OnEvent = progress.Update, progress.Event
			started := time.Now()
			decided, err := d.Run(cmd.Context())
			progress.Done()
			switch {
			case decided != nil && decided.Result != nil: // this run rolled back
				if err == nil {
					err = resultError(decided.Result)
				}
				decided.Result.ExitCode, decided.Result.StartedAt = exitcode.Of(err), started
				if werr := out.write(g.stdout, decided.Result); werr != nil {
					return werr
				}
				return err
			case err != nil:
				return err
			}
			a := decided.Record.Approval
			_, err = fmt.Fprintf(g.stdout, "release %s: rollback %s by %s\n", decided.Record.ID, a.Decision, a.By)
			return err
		}),
	}
	f := cmd.Flags()
	f.DurationVar(&d.Timeout, "timeout", 5*time.Minute, "when this run rolls back: give up on the restored rollout after this long")
	f.DurationVar(&d.LockTTL, "lock-ttl", 30*time.Second, "how long the lock outlives a run that died")
	_ = f.MarkHidden("lock-ttl")
	out.add(f)
	env.add(cmd)
	if approve {
		nf.add(f)
	}
	addThresholdFlags(f, &d.Thresholds)
	if !approve {
		// reject rolls nothing back: the rollback's flags would only mislead in its help.
		for _, name := range []string{"timeout", "output", "junit", "summary-markdown", "image-pull-grace", "crash-loop-restarts", "readiness-slack", "unschedulable-grace", "quota-grace", "refusal-grace", "config-grace"} {
			_ = f.MarkHidden(name)
		}
	}
	return cmd
}
