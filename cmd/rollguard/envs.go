package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/config"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/registry"
)

// envFlags are kubectl flags for one environment: a fresh set per environment (promote talks to two
// clusters), with the environment's context and namespace, keeping --kubeconfig and the flags that say
// how to authenticate rather than where to go.
func envFlags(g *globals, env *config.Environment) *genericclioptions.ConfigFlags {
	f := genericclioptions.NewConfigFlags(true)
	ctxName, ns := env.Cluster, env.Namespace
	f.Context, f.Namespace = &ctxName, &ns
	f.KubeConfig, f.CacheDir, f.Timeout = g.kube.KubeConfig, g.kube.CacheDir, g.kube.Timeout
	f.Impersonate, f.ImpersonateUID, f.ImpersonateGroup = g.kube.Impersonate, g.kube.ImpersonateUID, g.kube.ImpersonateGroup
	return f
}

// withContext is a copy of the kubectl flags f with another context; every other flag is kept.
func withContext(f *genericclioptions.ConfigFlags, context string) *genericclioptions.ConfigFlags {
	c := genericclioptions.NewConfigFlags(true)
	c.CacheDir, c.KubeConfig, c.ClusterName, c.AuthInfoName, c.Namespace = f.CacheDir, f.KubeConfig, f.ClusterName, f.AuthInfoName, f.Namespace
	c.APIServer, c.TLSServerName, c.Insecure, c.CertFile, c.KeyFile, c.CAFile = f.APIServer, f.TLSServerName, f.Insecure, f.CertFile, f.KeyFile, f.CAFile
	c.BearerToken, c.Username, c.Password, c.Timeout, c.DisableCompression = f.BearerToken, f.Username, f.Password, f.Timeout, f.DisableCompression
	c.Impersonate, c.ImpersonateUID, c.ImpersonateGroup, c.ImpersonateUserExtra = f.Impersonate, f.ImpersonateUID, f.ImpersonateGroup, f.ImpersonateUserExtra
	c.WrapConfigFn = f.WrapConfigFn
	c.Context = &context
	return c
}

// checkContext refuses (exit 3) an environment whose context is not in the kubeconfig: a config error,
// named by its key, rather than an unreachable cluster. An empty or unreadable kubeconfig is left to
// kube.Connect, which reports it as no cluster configured (exit 4).
func checkContext(flags *genericclioptions.ConfigFlags, cfg *config.Config, env *config.Environment) error {
	raw, err := flags.ToRawKubeConfigLoader().RawConfig()
	if err != nil || len(raw.Contexts) == 0 {
		return nil
	}
	if _, ok := raw.Contexts[env.Cluster]; ok {
		return nil
	}
	names := make([]string, 0, len(raw.Contexts))
	for n := range raw.Contexts {
		names = append(names, n)
	}
	sort.Strings(names)
	return exitcode.BadInputf("%s: environments.%s.cluster: the kubeconfig has no context %q (contexts: %s); fix the name, or point KUBECONFIG or --kubeconfig at the file that has it",
		cfg.Path, env.Name, env.Cluster, strings.Join(names, ", "))
}

// envConnector connects to an environment's cluster through its kubeconfig context.
func envConnector(g *globals, cfg *config.Config) action.EnvConnector {
	return func(ctx context.Context, env *config.Environment) (*kube.Client, error) {
		flags := envFlags(g, env)
		if err := checkContext(flags, cfg, env); err != nil {
			return nil, err
		}
		return g.connectWith(ctx, flags)
	}
}

// applyEnv points a deploy at `--env NAME`: the environment's kubeconfig context, and the defaults
// action.Deploy.UseEnvironment resolves. Flags given explicitly win. It returns the environment's
// notification targets, expanded.
func applyEnv(cmd *cobra.Command, g *globals, d *action.Deploy, envName, configFile string) (notify []string, err error) {
	fl := cmd.Flags()
	if envName == "" {
		if fl.Changed("config") {
			return nil, exitcode.BadInputf("--config is only read with --env NAME")
		}
		return nil, nil
	}
	cfg, err := config.Load(configFile)
	if err != nil {
		return nil, err
	}
	env, err := cfg.Env(envName)
	if err != nil {
		return nil, err
	}
	if !fl.Changed("context") {
		// The environment's kubeconfig context, on a copy of the kubectl flags: the shared ones stay as given.
		flags := withContext(g.kube, env.Cluster)
		if err := checkContext(flags, cfg, env); err != nil {
			return nil, err
		}
		d.Connect = func(ctx context.Context) (*kube.Client, error) { return g.connectWith(ctx, flags) }
	}
	d.UseEnvironment(cfg, env, fl.Changed)
	return env.NotifyTargets(cfg.Path, d.Getenv)
}

func newEnvsCmd(g *globals) *cobra.Command {
	var configFile string
	var output format
	cmd := &cobra.Command{
		Use:   "envs",
		Short: "Show each environment's current release, images and digests, health, and drift",
		Long: `Envs reads every environment of rollguard.yaml (the promotion order first) and shows its current
release, last outcome, health now, the images its workloads run with their digests, and the drift from the
environment before it in the promotion order (the images that differ).

A digest comes from the image reference when it names one, else from the ready pods' imageID, else from the
tag resolved in the registry now (marked with *); "?" means none of these knows it. After showing every
environment, exits 4 when one cannot be reached and 3 when one is misconfigured (for example its context
is not in the kubeconfig).`,
		Example: `  rollguard envs
  rollguard envs --config deploy/rollguard.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configFile)
			if err != nil {
				return err
			}
			e := &action.Envs{Config: cfg, Connect: envConnector(g, cfg)}
			if e.Resolve, err = action.RegistryResolver(); err != nil {
				return err
			}
			states, runErr := e.Run(cmd.Context())
			var werr error
			if output == formatJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				werr = enc.Encode(map[string]any{"app": cfg.App, "promotion": cfg.Promotion, "environments": states})
			} else {
				werr = writeEnvs(g.stdout, states)
			}
			if werr != nil {
				return fmt.Errorf("writing the environments: %w", werr)
			}
			if runErr != nil {
				// Each environment's error is already in the output; say once that there were some.
				return exitcode.New(exitcode.Of(runErr), errors.New("some environments could not be read (see above)"))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", config.DefaultFile, "rollguard config `FILE`")
	addFormat(cmd.Flags(), &output, "text or json")
	return cmd
}

// writeEnvs prints the environments as a table, then the drift details.
func writeEnvs(w io.Writer, states []action.EnvState) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENV\tCONTEXT\tNAMESPACE\tRELEASE\tOUTCOME\tHEALTH\tIMAGES\tDRIFT")
	for _, s := range states {
		release, outcome := dash(s.Release), dash(strings.ReplaceAll(s.Outcome, "_", " "))
		var images []string
		for _, wl := range s.Workloads {
			for _, im := range wl.Images {
				images = append(images, imageText(im))
			}
		}
		drift := "-"
		switch {
		case s.DriftFrom == "":
		case len(s.Drift) == 0:
			drift = "none (vs " + s.DriftFrom + ")"
		default:
			drift = fmt.Sprintf("%d vs %s", len(s.Drift), s.DriftFrom)
		}
		health := s.Health
		if s.Error != "" {
			health = "unreachable"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Cluster, s.Namespace, release, outcome, health, dash(strings.Join(images, ", ")), drift)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range states {
		if slices.ContainsFunc(s.Workloads, func(wl action.EnvWorkload) bool {
			return slices.ContainsFunc(wl.Images, func(im action.RunningImage) bool { return im.DigestFrom == action.DigestFromRegistry })
		}) {
			fmt.Fprintln(w, "* the tag's digest in the registry now: the pods report no digest, and the tag may have moved since they started")
			break
		}
	}
	for _, s := range states {
		if slices.ContainsFunc(s.Workloads, func(wl action.EnvWorkload) bool {
			return slices.ContainsFunc(wl.Images, func(im action.RunningImage) bool { return im.Digest == "" })
		}) {
			fmt.Fprintln(w, "? digest unknown: no ready pod reports one and the registry could not resolve the tag")
			break
		}
	}
	for _, s := range states {
		if s.Error != "" {
			fmt.Fprintf(w, "\n%s: %s\n", s.Name, s.Error)
		}
		for _, wl := range s.Workloads {
			if !wl.Healthy {
				fmt.Fprintf(w, "\n%s: %s/%s is not healthy: %s\n", s.Name, wl.Kind, wl.Name, wl.Detail)
			}
		}
		if len(s.Drift) > 0 {
			fmt.Fprintf(w, "\n%s differs from %s:\n", s.Name, s.DriftFrom)
			for _, d := range s.Drift {
				fmt.Fprintf(w, "  %s\n", d)
			}
		}
	}
	return nil
}

// imageText is "web:1.0.0@sha256:0123456789ab": the image's last path element and its short digest; a
// digest resolved from the registry now (not known to run) is marked with *.
func imageText(im action.RunningImage) string {
	base, _, _ := strings.Cut(path.Base(im.Image), "@")
	switch {
	case im.Digest == "":
		return base + "@?"
	case im.DigestFrom == action.DigestFromRegistry:
		return base + "@" + registry.ShortDigest(im.Digest) + "*"
	}
	return base + "@" + registry.ShortDigest(im.Digest)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newAccessCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "access",
		Short: "Manage environments' access policies (allowed client networks)",
	}
	var configFile, envName string
	apply := &cobra.Command{
		Use:   "apply --env NAME",
		Short: "Enforce an environment's access policy now, without deploying",
		Long: `Apply enforces the access policy of an environment from rollguard.yaml: the ingress-nginx allowlist
annotations on its Ingresses, Kong's ip-restriction plugin, or a NetworkPolicy. Only those objects change;
workloads are never touched, so nothing restarts. An environment without an access policy is left alone.
deploy --env applies the policy too, right after the release's objects are applied.`,
		Example: `  rollguard access apply --env staging`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configFile)
			if err != nil {
				return err
			}
			env, err := (&action.AccessApply{Config: cfg, Env: envName, Connect: envConnector(g, cfg)}).Run(cmd.Context())
			if err != nil {
				return err
			}
			if env.Access == nil {
				_, err = fmt.Fprintf(g.stdout, "environment %s has no access policy; nothing changed\n", env.Name)
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "environment %s: %s allows %s\n", env.Name, env.Access.Provider, strings.Join(env.Access.AllowCIDRs, ", "))
			return err
		},
	}
	apply.Flags().StringVar(&configFile, "config", config.DefaultFile, "rollguard config `FILE`")
	apply.Flags().StringVar(&envName, "env", "", "environment `NAME` in the config")
	cmd.AddCommand(apply)
	return cmd
}
