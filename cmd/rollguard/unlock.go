package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/exitcode"
)

func newUnlockCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unlock APP",
		Short: "Remove an app's deploy lock left by a run that died",
		Long: `Unlock removes the lock that keeps two rollguard runs from deploying or rolling back the same app at
once. A lock whose run died expires by itself (30 seconds after its last renewal), so unlock is only
needed when that is too long to wait. A run that is still alive notices at once that its lock was taken:
it stops changing anything, records its release as superseded and exits 2, so the next run owns the app.`,
		Example: `  rollguard unlock web -n shop`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return exitcode.BadInputf("pass the app to unlock: rollguard unlock APP [-n NAMESPACE]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := (&action.Unlock{Connect: g.connect, Namespace: g.namespace(), App: args[0]}).Run(cmd.Context())
			if err != nil {
				return err
			}
			if res.Holder == "" {
				_, err = fmt.Fprintf(g.stdout, "%s was not locked in namespace %s\n", res.App, res.Namespace)
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "unlocked %s in namespace %s (it was held by %s; if that run is alive it stops and records its release as superseded)\n", res.App, res.Namespace, res.Holder)
			return err
		},
	}
}
