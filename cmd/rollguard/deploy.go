package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/config"
	"github.com/rollguard/rollguard/internal/report"
)

func newDeployCmd(g *globals) *cobra.Command {
	d := &action.Deploy{Stdin: os.Stdin, Getenv: os.Getenv}
	var out outputFlags
	var nf notifyFlags
	var envName, configFile string
	podPreflight := true
	cmd := &cobra.Command{
		Use:   "deploy -f PATH [-f PATH...] | deploy --env NAME",
		Short: "Apply a release, watch it, and explain a failing rollout within seconds",
		Long: `Deploy validates every object (locally, then with a server-side dry-run; one pod per workload is
dry-run created too, so a release whose pods the cluster would refuse exits 3 with nothing changed), records the release
with the previous state of everything it will change, applies with server-side apply in dependency order,
and follows every Deployment, StatefulSet, DaemonSet, Job and custom resource (status.conditions, the kstatus
way; annotate rollguard.dev/track: "false" to skip one) until all are healthy (or complete) or one fails. A failure is
reported with its reason, evidence and a suggested fix as soon as it is visible, not when the timeout ends.

On failure (--on-failure): rollback restores every changed object (ConfigMaps and Secrets included), deletes
objects the release created, and proves the rollback healthy (exit 1); approve waits for
"rollguard approve|reject RELEASE" (or a terminal answer); hold exits 5 so a later pipeline step can run
"rollguard rollback RELEASE"; none exits 2. One run per app at a time (a Lease lock).

Release phases: Jobs annotated rollguard.dev/phase: pre-deploy (or Helm's helm.sh/hook: pre-install /
pre-upgrade) run to completion before any workload changes; a failed one fails the release (JobFailed) with
nothing else applied. Jobs annotated rollguard.dev/phase: verify (or helm.sh/hook: post-install /
post-upgrade) run once every workload is healthy; a failed one fails it (VerificationFailed). Once a
pre-deploy Job marked rollguard.dev/reversible: "false" succeeded, a failure is held (--on-irreversible).`,
		Example: `  rollguard deploy -f k8s/ --image web=registry.example.com/web:1.4.2 --timeout 5m
  rollguard deploy --env staging --image web=registry.example.com/web:1.4.2
  helm template web ./chart | rollguard deploy -f - -n web
  rollguard deploy -f overlays/prod -o json --junit report.xml`,
		Args: cobra.NoArgs,
		RunE: out.wrap(g, "deploy", func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			d.Connect = g.connect
			d.Namespace = g.namespace()
			envNotify, err := applyEnv(cmd, g, d, envName, configFile)
			if err != nil {
				return err
			}
			d.Explicit = cmd.Flags().Changed
			if d.Notify, err = nf.notifier(g, envNotify); err != nil {
				return err
			}
			defer d.Notify.Flush()
			d.Dashboard = nf.dashboard
			d.Notice = g.stderr
			d.SkipPodPreflight = !podPreflight
			if interactive(d.Files) {
				d.Prompt = os.Stdin
			}
			return out.track(g, &d.Watch, func() (*report.Result, error) { return d.Run(cmd.Context()) })
		}),
	}
	f := cmd.Flags()
	f.StringVar(&envName, "env", "", "deploy to environment `NAME` of rollguard.yaml: its context, namespace, manifests, timeout, on-failure, approval and access policy (flags given explicitly win)")
	f.StringVar(&configFile, "config", config.DefaultFile, "with --env: the rollguard config `FILE`")
	f.StringArrayVarP(&d.Files, "filename", "f", nil, "manifest file, folder (kustomization folders are built) or - for stdin; repeatable")
	f.StringArrayVar(&d.Images, "image", nil, "set a container's image, `CONTAINER=IMAGE` (* for all containers), or CONTAINER=previous for the tag pushed before the one the cluster runs; repeatable")
	f.BoolVar(&d.AllowMutableTags, "allow-mutable-tags", false, "accept images without a tag or with a mutable tag such as latest")
	f.StringVar(&d.ChangeCause, "change-cause", "", "text recorded in kubernetes.io/change-cause (default: built from CI variables)")
	f.DurationVar(&d.Timeout, "timeout", 5*time.Minute, "give up on a rollout that has not finished after this long")
	f.StringVar(&d.App, "app", "", "release name for records, lock and history (default: the first workload's name)")
	f.StringVar(&d.OnFailure, "on-failure", string(action.OnFailureRollback), "what to do when the release fails: rollback, approve (wait for rollguard approve/reject), hold (exit 5; roll back later with rollguard rollback) or none")
	f.StringVar(&d.OnIrreversible, "on-irreversible", string(action.IrreversibleHold), `once a pre-deploy Job marked rollguard.dev/reversible: "false" succeeded, a failure is not rolled back automatically: hold (exit 5), approve (wait for rollguard approve/reject) or rollback`)
	f.DurationVar(&d.Bake, "bake", 0, "after the release is healthy, keep watching it this `DURATION` (e.g. 5m): a crash, a restart or lost readiness in the new pods fails it and the on-failure policy runs")
	f.BoolVar(&d.RequireProbes, "require-probes", false, "refuse (exit 3, nothing changed) a Deployment, StatefulSet or DaemonSet without a readinessProbe; without it they get a warning")
	f.DurationVar(&d.ApprovalTimeout, "approval-timeout", 24*time.Hour, "with --on-failure=approve: how long to wait for a decision")
	f.StringVar(&d.ApprovalTimeoutAction, "approval-timeout-action", "rollback", "with --on-failure=approve: rollback or reject when nobody decides in time")
	f.BoolVar(&podPreflight, "pod-preflight", true, "before applying, dry-run create one pod per workload so LimitRanges, Pod Security, ServiceAccounts, webhooks and quota judge it (exit 3 if refused); false leaves refused pods to tracking")
	f.DurationVar(&d.WaitForLock, "wait-for-lock", 2*time.Minute, "how long to wait while another run deploys or rolls back the same app (a dead run's lock expires in 30s)")
	f.DurationVar(&d.LockTTL, "lock-ttl", 30*time.Second, "how long the lock outlives a run that died")
	_ = f.MarkHidden("lock-ttl")
	out.add(f)
	nf.add(f)
	nf.addDashboard(f)
	addThresholdFlags(f, &d.Thresholds)
	return cmd
}

// interactive reports whether a person can answer a prompt: stdin is a terminal, not in CI, and not the
// manifest stream.
func interactive(files []string) bool {
	for _, f := range files {
		if f == "-" {
			return false
		}
	}
	return report.IsTerminal(os.Stdin)
}
