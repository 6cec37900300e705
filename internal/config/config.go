// Package config reads rollguard.yaml: the app, its manifests, its environments (cluster context, namespace,
// timeout, on-failure policy, approval, access policy) and the promotion order between them.
//
// Decoding is strict and walks the YAML tree itself so every error names the file, the line and the key
// path ("rollguard.yaml:12: environments.staging.onFailure: must be rollback, approve, hold or none"), and
// is bad input (exit 3).
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rollguard/rollguard/internal/access"
	"github.com/rollguard/rollguard/internal/exitcode"
)

// APIVersion is the schema version this rollguard reads.
const APIVersion = "rollguard.dev/v1"

// DefaultFile is the config file read from the working directory when --config is not given.
const DefaultFile = "rollguard.yaml"

// Default settings of an environment.
const (
	DefaultTimeout       = 5 * time.Minute
	DefaultOnFailure     = "rollback"
	DefaultApprovalWait  = 24 * time.Hour
	DefaultApprovalTimed = "rollback"
)

// Config is a parsed rollguard.yaml.
type Config struct {
	// Path is the file it was read from, as given.
	Path string
	App  string
	// Manifests are the app's manifest files or folders, resolved against the config file's folder.
	Manifests []string
	// Promotion is the order releases move in, e.g. dev, staging, production.
	Promotion []string
	// Environments by name.
	Environments map[string]*Environment
}

// Environment is one place the app runs.
type Environment struct {
	Name string
	// Cluster is the kubeconfig context to connect with.
	Cluster   string
	Namespace string
	Timeout   time.Duration
	// OnFailure is rollback, approve, hold or none.
	OnFailure string
	Approval  Approval
	// Manifests override the app's manifests for this environment (e.g. a kustomize overlay); resolved
	// against the config file's folder. Empty means the app's.
	Manifests []string
	// Access is nil when the environment has no access policy: rollguard then leaves its network exposure
	// alone.
	Access *access.Policy
	// Bake keeps watching a healthy release this long (deploy --bake); 0 means no bake window.
	Bake time.Duration
	// OnIrreversible is hold, approve or rollback: what replaces an automatic rollback once an irreversible
	// pre-deploy Job succeeded (deploy --on-irreversible); empty means the flag's default.
	OnIrreversible string
	// RequireProbes makes a workload without a readinessProbe an error (deploy --require-probes).
	RequireProbes bool
	// Notify are notification targets ([FORMAT+]URL), as written: a webhook URL is a secret, so the file
	// normally names an environment variable (${SLACK_WEBHOOK}) that NotifyTargets expands.
	Notify []string
}

// NotifyTargets expands ${VAR} and $VAR in the environment's notify entries with getenv. An unset or
// empty variable is bad input naming the variable (never its value).
func (e *Environment) NotifyTargets(file string, getenv func(string) string) ([]string, error) {
	out := make([]string, 0, len(e.Notify))
	for i, s := range e.Notify {
		var missing string
		v := os.Expand(s, func(name string) string {
			val := getenv(name)
			if val == "" && missing == "" {
				missing = name
			}
			return val
		})
		if missing != "" {
			return nil, exitcode.BadInputf("%s: environments.%s.notify[%d]: environment variable %s is not set: export it (the webhook URL) before running rollguard", file, e.Name, i, missing)
		}
		out = append(out, v)
	}
	return out, nil
}

// Approval configures onFailure: approve.
type Approval struct {
	Timeout time.Duration
	// TimeoutAction is rollback or reject.
	TimeoutAction string
}

// Error is a config error at a key path.
type Error struct {
	File string
	Line int
	Path string
	Msg  string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Path == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Path + ": " + e.Msg
}

// Load reads and validates a config file. Every error is bad input (exit 3).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if path == DefaultFile {
			wd, _ := os.Getwd()
			return nil, exitcode.BadInputf("%s not found in %s: create it (see docs/config.md) or pass --config FILE", DefaultFile, wd)
		}
		return nil, exitcode.BadInputf("config file %s not found: check --config", path)
	}
	if err != nil {
		return nil, exitcode.BadInputf("reading config %s: %v", path, err)
	}
	cfg, err := Parse(path, data, filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse validates a config read from file (named in errors); relative manifest paths are resolved
// against dir.
func Parse(file string, data []byte, dir string) (*Config, error) {
	p := &parser{file: file}
	cfg, err := p.parse(data, dir)
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			return nil, exitcode.New(exitcode.BadInput, err)
		}
		return nil, exitcode.BadInputf("%s: %v", file, err)
	}
	return cfg, nil
}

// Env returns the named environment, or a bad-input error listing the ones that exist.
func (c *Config) Env(name string) (*Environment, error) {
	if e, ok := c.Environments[name]; ok {
		return e, nil
	}
	return nil, exitcode.BadInputf("%s: no environment %q; environments are %s", c.Path, name, strings.Join(c.Names(), ", "))
}

// Names lists the environments: the promotion order first, then the others alphabetically.
func (c *Config) Names() []string {
	out := slices.Clone(c.Promotion)
	var rest []string
	for n := range c.Environments {
		if !slices.Contains(out, n) {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// Next returns the environment after name in the promotion order, or "" when name is last or not in it.
func (c *Config) Next(name string) string {
	i := slices.Index(c.Promotion, name)
	if i < 0 || i+1 >= len(c.Promotion) {
		return ""
	}
	return c.Promotion[i+1]
}

// Previous returns the environment before name in the promotion order, or "".
func (c *Config) Previous(name string) string {
	i := slices.Index(c.Promotion, name)
	if i <= 0 {
		return ""
	}
	return c.Promotion[i-1]
}

// ManifestsOf returns the manifests deployed to an environment: its own, else the app's.
func (c *Config) ManifestsOf(e *Environment) []string {
	if len(e.Manifests) > 0 {
		return e.Manifests
	}
	return c.Manifests
}

// OrderText is the promotion order as people read it: "dev → staging → production".
func (c *Config) OrderText() string {
	if len(c.Promotion) == 0 {
		return "(no promotion order)"
	}
	return strings.Join(c.Promotion, " → ")
}
