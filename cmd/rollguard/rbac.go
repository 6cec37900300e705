package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/guard"
	"github.com/rollguard/rollguard/internal/rbac"
)

func newRBACCmd(g *globals) *cobra.Command {
	o := rbac.Options{}
	var extra []string
	var forGuard bool
	cmd := &cobra.Command{
		Use:   "rbac [-n NAMESPACE | --cluster-scope | --guard]",
		Short: "Print the Role a pipeline identity needs to deploy, roll back, read history and approve",
		Long: `rbac prints the least-privilege Role (or, with --cluster-scope, ClusterRole) rollguard needs for deploy,
rollback, undo, status, history, approve/reject and unlock: apply and roll back the common kinds a release
holds, track workloads (list/watch), keep release records (Secrets), lock (a Lease) and read previous
container logs. It reads no cluster; apply its output with kubectl apply -f -.

A release holding other kinds (a CRD's objects, for example) needs them too: add each with
--resource RESOURCE.GROUP (plural, as kubectl api-resources prints it). Before changing anything, deploy
checks with SelfSubjectAccessReviews that the identity could also roll the release back, and refuses
(exit 3) naming what is missing.`,
		Example: `  rollguard rbac -n shop --service-account ci:deployer | kubectl apply -f -
  rollguard rbac --cluster-scope --resource widgets.example.com
  rollguard rbac --guard                # the ClusterRole of rollguard guard`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if forGuard {
				return printGuardRole(g)
			}
			for _, e := range extra {
				r, err := rbac.ParseResource(e)
				if err != nil {
					return exitcode.BadInputf("--resource: %v", err)
				}
				if o.Apply == nil {
					o.Apply = rbac.DefaultResources()
				}
				o.Apply = append(o.Apply, r)
			}
			if !o.ClusterScope {
				o.Namespace = g.namespace()
				if o.Namespace == "" {
					// The kubeconfig's namespace, as every other command uses; reading it contacts nothing.
					ns, _, err := g.kube.ToRawKubeConfigLoader().Namespace()
					if err != nil || ns == "" {
						ns = "default"
					}
					o.Namespace = ns
				}
			}
			objs, err := rbac.Objects(o)
			if err != nil {
				return exitcode.BadInputf("%v", err)
			}
			var b strings.Builder
			if o.ClusterScope {
				fmt.Fprintf(&b, "# rollguard's permissions in every namespace. Bind per namespace with a RoleBinding to ClusterRole %s,\n# or everywhere with a ClusterRoleBinding (--service-account adds one).\n", roleName(o))
			} else {
				fmt.Fprintf(&b, "# rollguard's permissions in namespace %s. Bind with: kubectl create rolebinding %s -n %s --role %s --serviceaccount NS:NAME\n", o.Namespace, roleName(o), o.Namespace, roleName(o))
			}
			b.WriteString("# Kinds outside the common set (CRDs): add --resource RESOURCE.GROUP.\n")
			var p printers.YAMLPrinter
			for _, obj := range objs {
				if err := p.PrintObj(obj, &b); err != nil {
					return fmt.Errorf("printing the role: %w", err)
				}
			}
			_, err = fmt.Fprint(g.stdout, b.String())
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.ClusterScope, "cluster-scope", false, "print a ClusterRole (for a pipeline deploying to many namespaces) instead of a Role")
	f.StringVar(&o.Name, "name", "rollguard", "name of the Role or ClusterRole")
	f.StringVar(&o.ServiceAccount, "service-account", "", "also print a binding of the role to service account `NAMESPACE:NAME`")
	f.StringArrayVar(&extra, "resource", nil, "grant the apply and rollback verbs on one more resource, `RESOURCE.GROUP` (e.g. widgets.example.com); repeatable")
	f.BoolVar(&forGuard, "guard", false, "print the ClusterRole of rollguard guard instead (what `rollguard guard manifests` binds)")
	return cmd
}

// printGuardRole prints the guard's ClusterRole, exactly as `rollguard guard manifests` has it.
func printGuardRole(g *globals) error {
	role := &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: guard.Name, Labels: map[string]string{"app.kubernetes.io/managed-by": "rollguard", "app.kubernetes.io/name": guard.Name}},
		Rules:      rbac.GuardRules(),
	}
	var b strings.Builder
	b.WriteString("# rollguard guard's permissions (cluster-wide). Bind it to the guard's ServiceAccount; rollguard guard manifests does.\n")
	var p printers.YAMLPrinter
	if err := p.PrintObj(role, &b); err != nil {
		return fmt.Errorf("printing the guard's role: %w", err)
	}
	_, err := fmt.Fprint(g.stdout, b.String())
	return err
}

func roleName(o rbac.Options) string {
	if o.Name == "" {
		return "rollguard"
	}
	return o.Name
}
