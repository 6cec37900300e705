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
		repository, policyFile string
		output                 format
		dryRun                 bool
		pf                     protectFlags
	)
	cmd := &cobra.Command{
		Use:   "prune --repository REGISTRY/REPO --policy policy.json [--dry-run]",
		Short: "Apply an AWS ECR lifecycle policy to ECR or any OCI registry, never deleting images in use",
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
			protections, err := pf.options(cmd, g)
			if err != nil {
				return err
			}
			p := &action.Prune{
				Registry:   func() (*registry.Client, error) { return registryClient(api) },
				Repository: repository, PolicyFile: policyFile, DryRun: dryRun, Protections: protections,
			}
			rep, err := p.Run(cmd.Context())
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
	addFormat(f, &output, "text (a table of decisions) or json")
	pf.add(f)
	return cmd
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

// options turns the protection flags into the action's options. A config given explicitly must exist; the
// default one is read only when present.
func (p *protectFlags) options(cmd *cobra.Command, g *globals) (action.Protections, error) {
	o := action.Protections{
		Protect: p.protect, InUse: p.inUse, InUseAsked: cmd.Flags().Changed("in-use-from-cluster"),
		ClusterConfigured: clusterConfigured(g), AllNamespaces: p.allNamespaces, Connect: g.connect,
		Notice: func(msg string) { fmt.Fprintln(g.stderr, "note:", msg) },
	}
	if p.configFile == "" {
		return o, nil // --config "": no environments
	}
	if _, err := os.Stat(p.configFile); err == nil || cmd.Flags().Changed("config") {
		cfg, err := config.Load(p.configFile)
		if err != nil {
			return o, err
		}
		o.Config, o.ConnectEnv = cfg, envConnector(g, cfg)
	}
	return o, nil
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

func printReport(stdout, stderr io.Writer, output format, rep *registry.Report) error {
	if output == formatJSON {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", tags, registry.ShortDigest(d.Image.Digest), pushed, rule, action)
	}
	return counts, tw.Flush()
}

func newImagesPreviousCmd(g *globals, api *string) *cobra.Command {
	var prefix string
	var output format
	cmd := &cobra.Command{
		Use:   "previous REGISTRY/REPO [--prefix P]",
		Short: "Print the tag pushed before the newest one, for pipelines that roll back by tag",
		Long: `previous prints the tag of the image pushed before the newest one among tags starting with --prefix
(order by push time: ECR's imagePushedAt, or the image config's created time elsewhere; tags sharing the newest image's digest are the newest, not the
previous one). It refuses to guess when two images have the same time or an image has no time.
-o json adds the digest and a pinned REPO:TAG@DIGEST reference.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := registryClient(api)
			if err != nil {
				return err
			}
			prev, err := registry.Previous(cmd.Context(), client, args[0], prefix)
			if err != nil {
				return err
			}
			if output == formatJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(prev)
			}
			_, err = fmt.Fprintln(g.stdout, prev.Tag)
			return err
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", "", "only consider tags starting with this prefix, e.g. 1.")
	addFormat(cmd.Flags(), &output, "text (the tag) or json")
	return cmd
}
