package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/lock"
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
			app := args[0]
			c, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			ns := g.namespace()
			if ns == "" {
				ns = c.Namespace
			}
			holder, err := lock.ForceUnlock(cmd.Context(), c, ns, app)
			if err != nil {
				return err
			}
			if holder == "" {
				_, err = fmt.Fprintf(g.stdout, "%s was not locked in namespace %s\n", app, ns)
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "unlocked %s in namespace %s (it was held by %s; if that run is alive it stops and records its release as superseded)\n", app, ns, holder)
			return err
		},
	}
}
