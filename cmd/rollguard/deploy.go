package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/action"
)

func newDeployCmd(g *globals) *cobra.Command {
	d := &action.Deploy{Stdin: os.Stdin, Getenv: os.Getenv}
	var out outputFlags
	cmd := &cobra.Command{
		Use:   "deploy -f PATH [-f PATH...]",
		Short: "Apply a release, watch it, and explain a failing rollout within seconds",
		Long: `Deploy validates every object (locally, then with a server-side dry-run), applies them with
server-side apply in dependency order, and follows every Deployment, StatefulSet and DaemonSet until all are
healthy or one fails. A failure is reported with its reason, evidence and a suggested fix as soon as it is
visible, not when the timeout ends.`,
		Example: `  rollguard deploy -f k8s/ --image web=registry.example.com/web:1.4.2 --timeout 5m
  helm template web ./chart | rollguard deploy -f - -n web
  rollguard deploy -f overlays/prod -o json --junit report.xml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			d.Connect = g.connect
			d.Namespace = g.namespace()
			d.Log = g.logger()
			progress := progressPrinter(g.stderr)
			d.OnUpdate = progress.Update
			res, err := d.Run(cmd.Context())
			progress.Done()
			if res != nil && (err == nil || res.Outcome != "") {
				if werr := out.write(g.stdout, res); werr != nil {
					return werr
				}
			}
			if err != nil {
				return err
			}
			return resultError(res)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&d.Files, "filename", "f", nil, "manifest file, folder (kustomization folders are built) or - for stdin; repeatable")
	f.StringArrayVar(&d.Images, "image", nil, "set a container's image, `CONTAINER=IMAGE` (* for all containers); repeatable")
	f.BoolVar(&d.AllowMutableTags, "allow-mutable-tags", false, "accept images without a tag or with a mutable tag such as latest")
	f.StringVar(&d.ChangeCause, "change-cause", "", "text recorded in kubernetes.io/change-cause (default: built from CI variables)")
	f.DurationVar(&d.Timeout, "timeout", 5*time.Minute, "give up on a rollout that has not finished after this long")
	out.add(f)
	addThresholdFlags(f, &d.Thresholds)
	return cmd
}
