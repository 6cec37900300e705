package main

import (
	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/config"
	"github.com/rollguard/rollguard/internal/exitcode"
)

// envScope lets a command that acts on a release (rollback, approve, reject) find it the way deploy
// --env put it there: the environment's kube context and namespace, unless --context or -n are given.
type envScope struct {
	name   string
	config string
}

func (e *envScope) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&e.name, "env", "", "act in environment `NAME` of rollguard.yaml: its kube context and namespace (--context and -n win)")
	cmd.Flags().StringVar(&e.config, "config", config.DefaultFile, "with --env: the rollguard config `FILE`")
}

// namespace points g at the environment's context and returns the namespace to use: -n when given, else
// the environment's, else "" (the kubeconfig context's).
func (e *envScope) namespace(cmd *cobra.Command, g *globals) (string, error) {
	fl := cmd.Flags()
	if e.name == "" {
		if fl.Changed("config") {
			return "", exitcode.BadInputf("--config is only read with --env NAME")
		}
		return g.namespace(), nil
	}
	cfg, err := config.Load(e.config)
	if err != nil {
		return "", err
	}
	env, err := cfg.Env(e.name)
	if err != nil {
		return "", err
	}
	if !fl.Changed("context") {
		*g.kube.Context = env.Cluster
		if err := checkContext(g.kube, cfg, env); err != nil {
			return "", err
		}
	}
	if fl.Changed("namespace") {
		return g.namespace(), nil
	}
	return env.Namespace, nil
}
