package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/config"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/registry"
	"github.com/rollguard/rollguard/internal/registry/lifecycle"
)

func newImagesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Prune an image registry without deleting images in use, and find rollback tags",
	}
	api := new(string)
	cmd.PersistentFlags().StringVar(api, "registry-api", registry.APIAuto,
		"registry API: auto (ECR for ACCOUNT.dkr.ecr.REGION.amazonaws.com, else the OCI distribution API), ecr or oci")
	cmd.AddCommand(newImagesPruneCmd(g, api), newImagesPreviousCmd(g, api), newImagesPolicyCmd(g, api))
	return cmd
}

// registryClient is the registry client for the images commands, reading ECR or OCI per --registry-api.
func registryClient(flag *string) (*registry.Client, error) {
	api, err := registry.ParseAPI(*flag)
	if err != nil {
		return nil, err
	}
	c, err := registry.NewClient()
	if err != nil {
		return nil, err
	}
	c.API = api
	return c, nil
}

func newImagesPruneCmd(g *globals, api *string) *cobra.Command {
	var (
		repository, policyFile, output string
		dryRun                         bool
		pf                             protectFlags
	)
	cmd := &cobra.Command{
		Use:   "prune --repository REGISTRY/REPO --policy policy.json [--dry-run]",
		Short: "Apply an AWS ECR lifecycle policy to any OCI registry, never deleting images in use",
		Long: `prune evaluates an AWS ECR lifecycle policy document, unchanged, with ECR's semantics, against any OCI
registry and deletes the manifests it expires. Beyond ECR, an image that a cluster workload runs or can roll
back to (pods, Deployments, all ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs, ControllerRevisions),
or that --protect names, is never deleted; the plan shows it as protected and why.

On ECR (ACCOUNT.dkr.ecr.REGION.amazonaws.com, or --registry-api ecr) the ECR API is used: ECR's own push
times, untagged images counted and expired as ECR does, the AWS SDK's standard credential chain and endpoint
settings (AWS_PROFILE, IRSA/OIDC web identity, AWS_ENDPOINT_URL_ECR, ...). Elsewhere the OCI distribution API
records no push time: "pushed" is the image config's created time, and credentials come from the docker
config and credential helpers, as for docker and crane. See docs/registry.md.

--in-use-from-cluster (default true) reads the current kube context (-n, or -A for all namespaces). When
no kubeconfig exists at all and the flag was not given, prune goes on without it and says so; when a
cluster is configured but cannot be read, prune stops (exit 4) rather than delete blind.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if output != "table" && output != "json" {
				return exitcode.BadInputf("--output %q: use table or json", output)
			}
			if repository == "" || policyFile == "" {
				return exitcode.BadInputf("--repository and --policy are required")
			}
			policy, _, err := readPolicy(policyFile)
			if err != nil {
				return err
			}
			repo, err := registry.ParseRepository(repository)
			if err != nil {
				return err
			}
			protections, err := pf.gather(cmd, g)
			if err != nil {
				return err
			}
			client, err := registryClient(api)
			if err != nil {
				return err
			}
			rep, err := registry.Prune(ctx, client, registry.PruneOptions{
				Repository: repo.Name(), Policy: policy, Protect: protections, DryRun: dryRun,
			})
			if rep != nil {
				if perr := printReport(g.stdout, g.stderr, output, rep); perr != nil && err == nil {
					err = perr
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&repository, "repository", "", "REGISTRY/REPO to prune, e.g. ghcr.io/acme/web")
	f.StringVar(&policyFile, "policy", "", "AWS ECR lifecycle policy document (JSON)")
	f.BoolVar(&dryRun, "dry-run", false, "print the plan, delete nothing")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	pf.add(f)
	return cmd
}

// readPolicy reads and validates a lifecycle policy file; it returns the file's bytes too.
func readPolicy(file string) (*lifecycle.Policy, []byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, exitcode.BadInputf("reading policy: %v", err)
	}
	policy, err := lifecycle.Parse(data)
	if err != nil {
		return nil, nil, exitcode.BadInputf("policy %s: %v", file, err)
	}
	return policy, data, nil
}

// protectFlags are the flags that say which images rollguard protects, shared by prune and policy.
type protectFlags struct {
	protect              []string
	inUse, allNamespaces bool
	configFile           string
}

func (p *protectFlags) add(f *pflag.FlagSet) {
	f.StringArrayVar(&p.protect, "protect", nil, "never delete this image: REGISTRY/REPO:TAG, REGISTRY/REPO@DIGEST, or a bare TAG or DIGEST of --repository (repeatable)")
	f.BoolVar(&p.inUse, "in-use-from-cluster", true, "protect images the current kube context runs or can roll back to")
	f.BoolVarP(&p.allNamespaces, "all-namespaces", "A", false, "with --in-use-from-cluster, read every namespace")
	f.StringVar(&p.configFile, "config", config.DefaultFile, "also protect what every environment of this rollguard config runs, and every image its recorded releases deployed or would roll back to (read when the file exists; --config \"\" reads none)")
}

// gather collects the protections: --protect, the cluster's images in use, the config's environments.
func (p *protectFlags) gather(cmd *cobra.Command, g *globals) ([]registry.Protection, error) {
	var out []registry.Protection
	for _, ref := range p.protect {
		out = append(out, registry.Protection{Ref: ref, Why: "--protect " + ref})
	}
	if p.inUse {
		found, err := clusterImages(cmd, g, p.allNamespaces)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	found, err := configImages(cmd, g, p.configFile)
	if err != nil {
		return nil, err
	}
	return append(out, found...), nil
}

// clusterImages reads the images in use from the current kube context. With no kubeconfig at all, and the
// flag left at its default, it returns nothing and says so: a CI job that only holds registry credentials
// still prunes, and the note makes the missing protection visible.
func clusterImages(cmd *cobra.Command, g *globals, allNamespaces bool) ([]registry.Protection, error) {
	if !clusterConfigured(g) && !cmd.Flags().Changed("in-use-from-cluster") {
		fmt.Fprintln(g.stderr, "note: no kubeconfig found; images in use in a cluster are not protected (pass --in-use-from-cluster=false to silence this)")
		return nil, nil
	}
	c, err := g.connect(cmd.Context())
	if err != nil {
		return nil, err
	}
	ns := c.Namespace
	if allNamespaces {
		ns = ""
	}
	return registry.InUse(cmd.Context(), c, ns)
}

// clusterConfigured reports whether any cluster is configured: a kubeconfig context, --server, or running in a
// pod. (cli-runtime falls back to localhost:8080 when nothing is, as kubectl does; that is not a cluster.)
func clusterConfigured(g *globals) bool {
	if g.kube.APIServer != nil && *g.kube.APIServer != "" {
		return true
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		return true
	}
	raw, err := g.kube.ToRawKubeConfigLoader().RawConfig()
	return err != nil || len(raw.Contexts) > 0 // an unreadable kubeconfig is configured, and its error shows later
}

func printReport(stdout, stderr io.Writer, output string, rep *registry.Report) error {
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	counts, err := printPlan(stdout, rep.Decisions)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s: %d expire, %d keep, %d protected\n", rep.Repository,
		counts[lifecycle.Expire], counts[lifecycle.Keep], counts[lifecycle.Protected])
	if rep.DryRun {
		fmt.Fprintln(stdout, "dry run: nothing deleted")
	} else {
		fmt.Fprintf(stdout, "deleted %d image(s)\n", len(rep.Deleted))
		for _, d := range rep.Deleted {
			fmt.Fprintf(stdout, "  deleted %s (%s)\n", d.Digest, strings.Join(d.Tags, ", "))
		}
		for _, s := range rep.Skipped {
			fmt.Fprintf(stdout, "  skipped %s: %s\n", s.Digest, s.Why)
		}
		for _, f := range rep.Failed {
			fmt.Fprintf(stdout, "  failed  %s (%s): %s: %s\n", f.Digest, strings.Join(f.Tags, ", "), f.Code, f.Reason)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(stderr, "note:", n)
	}
	return nil
}

// printPlan prints the plan as a table, newest image first, and counts the verdicts.
func printPlan(stdout io.Writer, decisions []lifecycle.Decision) (map[lifecycle.Verdict]int, error) {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TAG\tDIGEST\tPUSHED\tRULE\tACTION")
	counts := map[lifecycle.Verdict]int{}
	for _, d := range decisions {
		counts[d.Action]++
		tags := strings.Join(d.Image.Tags, ",")
		if tags == "" {
			tags = "<none>"
		}
		pushed := "-"
		if lifecycle.Dated(d.Image.Pushed) {
			pushed = d.Image.Pushed.UTC().Format(time.DateTime)
		}
		rule := "-"
		if d.Rule != 0 {
			rule = fmt.Sprint(d.Rule)
		}
		action := string(d.Action)
		switch d.Action {
		case lifecycle.Protected:
			action += " (" + d.Why + ")"
		case lifecycle.Keep:
			if d.Rule == 0 || !lifecycle.Dated(d.Image.Pushed) {
				action += " (" + d.Why + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", tags, shortDigest(d.Image.Digest), pushed, rule, action)
	}
	return counts, tw.Flush()
}

func shortDigest(d string) string {
	hex := strings.TrimPrefix(d, "sha256:")
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return hex
}

func newImagesPreviousCmd(g *globals, api *string) *cobra.Command {
	var prefix, output string
	cmd := &cobra.Command{
		Use:   "previous REGISTRY/REPO [--prefix P]",
		Short: "Print the tag pushed before the newest one, for pipelines that roll back by tag",
		Long: `previous prints the tag of the image pushed before the newest one among tags starting with --prefix
(order by push time: ECR's imagePushedAt, or the image config's created time elsewhere; tags sharing the newest image's digest are the newest, not the
previous one). It refuses to guess when two images have the same time or an image has no time.
-o json adds the digest and a pinned REPO:TAG@DIGEST reference.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return exitcode.BadInputf("--output %q: use text or json", output)
			}
			client, err := registryClient(api)
			if err != nil {
				return err
			}
			prev, err := registry.Previous(cmd.Context(), client, args[0], prefix)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(prev)
			}
			_, err = fmt.Fprintln(g.stdout, prev.Tag)
			return err
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", "", "only consider tags starting with this prefix, e.g. 1.")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text (the tag) or json")
	return cmd
}

// configImages protects, when a rollguard config is present, the images of every environment it names
// (each through its own kube context) and of every release recorded there. A config given explicitly must
// exist; the default one is read only when present.
func configImages(cmd *cobra.Command, g *globals, file string) ([]registry.Protection, error) {
	if file == "" {
		return nil, nil // --config "": no environments
	}
	if _, err := os.Stat(file); err != nil && !cmd.Flags().Changed("config") {
		return nil, nil
	}
	cfg, err := config.Load(file)
	if err != nil {
		return nil, err
	}
	return action.EnvironmentImages(cmd.Context(), cfg, envConnector(g, cfg))
}
