package main

import (
	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/report"
)

func newHistoryCmd(g *globals) *cobra.Command {
	h := &action.History{}
	var app string
	var output format
	cmd := &cobra.Command{
		Use:   "history TYPE/NAME | --app NAME",
		Short: "Show what was deployed, by whom, when, and how it ended",
		Long: `History lists a workload's revisions, newest first: for each, the images, the change cause, who
deployed it and when, and how it ended (succeeded, failed, rolled back and to which release, or the target
of a rollback). Revisions rollguard did not make (kubectl, Argo CD, helm) are listed too, from the
workload's ReplicaSets or ControllerRevisions. With --app it lists an app's rollguard releases.

Release records keep the previous state of the objects a release changed, Secrets included; history shows
only their kinds and names.`,
		Example: `  rollguard history deployment/web -n shop
  rollguard history --app web -n shop -o json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return exitcode.BadInputf("history takes one TYPE/NAME, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 1 && app != "":
				return exitcode.BadInputf("pass either TYPE/NAME or --app NAME, not both")
			case len(args) == 1:
				h.Object = args[0]
			case app != "":
				h.Object = app
			default:
				return exitcode.BadInputf("say whose history: pass TYPE/NAME (e.g. deployment/web) or --app NAME")
			}
			h.Connect = g.connect
			h.Namespace = g.namespace()
			res, err := h.Run(cmd.Context())
			if err != nil {
				return err
			}
			if output == formatJSON {
				return report.WriteJSON(g.stdout, res, "the history")
			}
			return report.HistoryText(g.stdout, res)
		},
	}
	addFormat(cmd.Flags(), &output, "output format: text or json")
	cmd.Flags().StringVar(&app, "app", "", "list the rollguard releases of app `NAME`")
	return cmd
}
