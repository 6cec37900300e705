package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/registry"
	"github.com/rollguard/rollguard/internal/report"
)

func newRollbackCmd(g *globals) *cobra.Command {
	r := &action.Rollback{}
	prev := &action.RollbackImage{Getenv: os.Getenv}
	var toPrevious bool
	registryAPI := new(string)
	var out outputFlags
	var env envScope
	var nf notifyFlags
	cmd := &cobra.Command{
		Use:   "rollback [RELEASE | --last --app NAME | --to-previous-image [TYPE/NAME | --app NAME]]",
		Short: "Restore a recorded release's previous state and prove it healthy",
		Long: `Rollback restores every object a release changed to its recorded previous state (ConfigMaps and
Secrets included), deletes the objects it created, and follows the restored workloads until they are healthy.
It is the later pipeline step after "rollguard deploy --on-failure=hold" (exit 5), and it finishes a
rollback that a killed run left half done.

Only the app's current release is rolled back: rolling back an older one would silently undo the newer
releases too, so it is refused (exit 3, naming the current release) unless --skip-newer says so; the
record then names the newer releases it undid.

--to-previous-image instead rolls a workload back to the image pushed before the one it runs, by push time
in the registry (ECR's imagePushedAt; elsewhere the image config's created time): the tag pushed before the
running one among tags starting with --prefix, pinned by digest. The change is recorded as a release and
tracked like a deploy. Name the workload (deployment/web) or the app (--app web: its newest release's
workload); --container picks the container when there are several. See docs/registry.md.`,
		Example: `  rollguard rollback web.v7 -n shop
  rollguard rollback --last --app web -n shop
  rollguard rollback web.v7 --env production
  rollguard rollback --to-previous-image deployment/web -n shop --prefix 1.
  rollguard rollback --to-previous-image --app web --container web`,
		Args: cobra.MaximumNArgs(1),
		RunE: out.wrap(g, "rollback", func(cmd *cobra.Command, args []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			ns, err := env.namespace(cmd, g)
			if err != nil {
				return err
			}
			if r.Notify, err = nf.notifier(g, nil); err != nil {
				return err
			}
			defer r.Notify.Flush()
			if toPrevious {
				if r.Last {
					return exitcode.BadInputf("pass --last or --to-previous-image, not both")
				}
				if len(args) == 1 {
					prev.Object = args[0]
				}
				prev.App, prev.Timeout, prev.WaitForLock, prev.LockTTL, prev.Thresholds = r.App, r.Timeout, r.WaitForLock, r.LockTTL, r.Thresholds
				prev.Connect, prev.Namespace = g.connect, ns
				if prev.Registry, err = registryClient(registryAPI); err != nil {
					return err
				}
				return out.track(g, &prev.Watch, func() (*report.Result, error) { return prev.Run(cmd.Context()) })
			}
			if prev.Container != "" || prev.Prefix != "" || cmd.Flags().Changed("registry-api") {
				return exitcode.BadInputf("--container, --prefix and --registry-api go with --to-previous-image")
			}
			if len(args) == 1 {
				r.Release = args[0]
			}
			r.Connect = g.connect
			r.Namespace = ns
			return out.track(g, &r.Watch, func() (*report.Result, error) { return r.Run(cmd.Context()) })
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&r.Last, "last", false, "roll back the newest release of --app")
	f.BoolVar(&toPrevious, "to-previous-image", false, "roll the workload back to the tag pushed before the one it runs (by registry push time)")
	f.StringVar(&prev.Container, "container", "", "with --to-previous-image: the container to roll back")
	f.StringVar(&prev.Prefix, "prefix", "", "with --to-previous-image: only tags starting with this prefix, e.g. 1.")
	f.StringVar(registryAPI, "registry-api", registry.APIAuto, "with --to-previous-image: auto (ECR for ACCOUNT.dkr.ecr.REGION.amazonaws.com, else the OCI distribution API), ecr or oci")
	f.BoolVar(&r.SkipNewer, "skip-newer", false, "roll back a release that is not the current one, undoing the newer releases' changes too (recorded)")
	f.StringVar(&r.App, "app", "", "the app whose newest release --last rolls back")
	f.DurationVar(&r.Timeout, "timeout", 5*time.Minute, "give up on the restored rollout after this long")
	f.DurationVar(&r.WaitForLock, "wait-for-lock", 2*time.Minute, "how long to wait while another run holds the app's lock")
	f.DurationVar(&r.LockTTL, "lock-ttl", 30*time.Second, "how long the lock outlives a run that died")
	_ = f.MarkHidden("lock-ttl")
	out.add(f)
	env.add(cmd)
	nf.add(f)
	addThresholdFlags(f, &r.Thresholds)
	return cmd
}
