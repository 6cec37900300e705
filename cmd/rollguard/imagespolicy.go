package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/registry"
	"github.com/rollguard/rollguard/internal/registry/lifecycle"
)

func newImagesPolicyCmd(g *globals, api *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy show|diff|apply --repository ECR_REPO [--policy FILE]",
		Short: "Compare an ECR repository's lifecycle policy with a file and put it, flagging images it would let ECR expire that rollguard protects",
		Long: `policy works on an ECR repository's own lifecycle policy (GetLifecyclePolicy, PutLifecyclePolicy), which
ECR runs once a day without knowing what a cluster runs or can roll back to.

  show   prints the policy on ECR and rollguard's plan for it today
  diff   compares --policy FILE with it, rule by rule (by rulePriority), beside rollguard's plan for the
         file today, and flags every image the file would let ECR expire that rollguard protects
  apply  does what diff does, then puts the file on the repository when it differs — refusing (exit 3)
         when it would let ECR expire a protected image, unless --allow-expiring-protected

Protections are those of images prune: --protect, the current kube context (--in-use-from-cluster, -n/-A)
and the rollguard config's environments and release records (--config). Nothing is deleted.`,
		Example: `  rollguard images policy show --repository 123456789012.dkr.ecr.eu-west-1.amazonaws.com/web
  rollguard images policy diff --repository 123456789012.dkr.ecr.eu-west-1.amazonaws.com/web --policy policy.json
  rollguard images policy apply --repository 123456789012.dkr.ecr.eu-west-1.amazonaws.com/web --policy policy.json`,
	}
	for _, verb := range []string{"show", "diff", "apply"} {
		cmd.AddCommand(newImagesPolicyVerbCmd(g, api, verb))
	}
	return cmd
}

var policyVerbs = map[string]string{
	"show":  "Print the repository's lifecycle policy and rollguard's plan for it today",
	"diff":  "Compare a policy file with the repository's, rule by rule, beside rollguard's plan and the protected images it would let ECR expire",
	"apply": "Put a policy file on the repository when it differs, refusing one that would let ECR expire a protected image",
}

func newImagesPolicyVerbCmd(g *globals, api *string, verb string) *cobra.Command {
	var (
		repository, policyFile string
		output                 format
		allowExpiring          bool
		pf                     protectFlags
	)
	cmd := &cobra.Command{
		Use:   verb + " --repository ECR_REPO",
		Short: policyVerbs[verb],
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			protections, err := pf.options(cmd, g)
			if err != nil {
				return err
			}
			p := &action.LifecyclePolicy{
				Registry: func() (*registry.Client, error) { return registryClient(api) },
				Verb:     verb, Repository: repository, PolicyFile: policyFile, AllowExpiringProtected: allowExpiring,
				Protections: protections,
			}
			rep, err := p.Run(cmd.Context())
			if rep != nil {
				if perr := printPolicyReport(g.stdout, g.stderr, output, verb, rep); perr != nil && err == nil {
					err = perr
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&repository, "repository", "", "the ECR repository, ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO")
	if verb != "show" {
		f.StringVar(&policyFile, "policy", "", "the lifecycle policy document (JSON) to compare with the repository's")
	}
	if verb == "apply" {
		f.BoolVar(&allowExpiring, "allow-expiring-protected", false, "put the policy even when it lets ECR expire images rollguard protects")
	}
	addFormat(f, &output, "text (a table) or json")
	pf.add(f)
	return cmd
}

func printPolicyReport(stdout, stderr io.Writer, output format, verb string, rep *registry.PolicyReport) error {
	if output == formatJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(stdout, "%s (%s)\n", rep.Repository, rep.ARN)
	switch {
	case verb == "show" && rep.Current == "":
		fmt.Fprintln(stdout, "no lifecycle policy on ECR")
	case verb == "show":
		fmt.Fprintln(stdout, indentJSON(rep.Current))
	case rep.Current == "":
		fmt.Fprintln(stdout, "no lifecycle policy on ECR yet; every rule of the file is new")
	}
	if verb != "show" {
		if len(rep.Changes) == 0 {
			fmt.Fprintln(stdout, "the file and the policy on ECR are the same")
		}
		for _, c := range rep.Changes {
			switch c.Kind {
			case "added":
				fmt.Fprintf(stdout, "+ rule %d: %s\n", c.RulePriority, c.Rule)
			case "removed":
				fmt.Fprintf(stdout, "- rule %d: %s\n", c.RulePriority, c.Rule)
			default:
				fmt.Fprintf(stdout, "~ rule %d: %s\n", c.RulePriority, strings.Join(c.Fields, "; "))
			}
		}
	}
	if len(rep.Decisions) > 0 {
		fmt.Fprintln(stdout, "\nrollguard's plan with this policy today (ACTION is what rollguard does; ECR would also expire the protected ones):")
		counts, err := printPlan(stdout, rep.Decisions)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d expire, %d keep, %d protected\n", counts[lifecycle.Expire], counts[lifecycle.Keep], counts[lifecycle.Protected])
	}
	if len(rep.AtRisk) > 0 {
		fmt.Fprintf(stdout, "\nWARNING: this policy lets ECR expire %d image(s) rollguard protects:\n", len(rep.AtRisk))
		for _, d := range rep.AtRisk {
			fmt.Fprintf(stdout, "  %s (%s) by rule %d: %s\n", tagList(d.Image.Tags), registry.ShortDigest(d.Image.Digest), d.Rule, strings.Join(d.ProtectedBy, "; "))
		}
	}
	if rep.Applied {
		fmt.Fprintln(stdout, "\napplied: the repository's lifecycle policy is now the file's")
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(stderr, "note:", n)
	}
	return nil
}

func tagList(tags []string) string {
	if len(tags) == 0 {
		return "<untagged>"
	}
	return strings.Join(tags, ",")
}

func indentJSON(s string) string {
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return s
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
