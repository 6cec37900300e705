package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/release"
)

// newDecideCmd is `rollguard approve` or `rollguard reject`: the decision on a rollback held by a deploy
// running with --on-failure=approve.
func newDecideCmd(g *globals, approve bool) *cobra.Command {
	use, short := "reject RELEASE", "Decline the rollback of a failed release that waits for approval"
	if approve {
		use, short = "approve RELEASE", "Approve the rollback of a failed release that waits for approval"
	}
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Example: "  rollguard " + use[:len(use)-len(" RELEASE")] + " web.v7 -n shop",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			ns := g.namespace()
			if ns == "" {
				ns = c.Namespace
			}
			rec, err := action.Decide(cmd.Context(), c, release.NewStore(c), ns, args[0], approve, os.Getenv)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "release %s: rollback %s by %s\n", rec.ID, rec.Approval.Decision, rec.Approval.By)
			return err
		},
	}
}
