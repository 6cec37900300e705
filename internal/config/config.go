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

	"go.yaml.in/yaml/v3"

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

type parser struct {
	file string
}

func (p *parser) errf(n *yaml.Node, path, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: p.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) parse(data []byte, dir string) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{File: p.file, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &Error{File: p.file, Msg: "is empty: start with apiVersion: " + APIVersion}
	}
	root := doc.Content[0]
	fields, err := p.mapping(root, "", "apiVersion", "app", "manifests", "promotion", "environments")
	if err != nil {
		return nil, err
	}
	cfg := &Config{Path: p.file, Environments: map[string]*Environment{}}

	v, ok := fields["apiVersion"]
	if !ok {
		return nil, p.errf(root, "apiVersion", "required: set apiVersion: %s", APIVersion)
	}
	if av, err := p.str(v, "apiVersion"); err != nil {
		return nil, err
	} else if av != APIVersion {
		return nil, p.errf(v, "apiVersion", "must be %s, got %q", APIVersion, av)
	}
	v, ok = fields["app"]
	if !ok {
		return nil, p.errf(root, "app", "required: name the app (it names release records, locks and history)")
	}
	if cfg.App, err = p.str(v, "app"); err != nil {
		return nil, err
	}
	if cfg.App == "" {
		return nil, p.errf(v, "app", "must not be empty")
	}
	if v, ok := fields["manifests"]; ok {
		if cfg.Manifests, err = p.paths(v, "manifests", dir); err != nil {
			return nil, err
		}
	}

	v, ok = fields["environments"]
	if !ok {
		return nil, p.errf(root, "environments", "required: define at least one environment")
	}
	if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
		return nil, p.errf(v, "environments", "must be a mapping of environment names to settings")
	}
	for i := 0; i < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		name := k.Value
		path := "environments." + name
		if _, dup := cfg.Environments[name]; dup {
			return nil, p.errf(k, path, "defined twice")
		}
		if err := validName(name); err != "" {
			return nil, p.errf(k, path, "%s", err)
		}
		env, err := p.environment(val, path, name, dir)
		if err != nil {
			return nil, err
		}
		if len(env.Manifests) == 0 && len(cfg.Manifests) == 0 {
			return nil, p.errf(val, path+".manifests", "required: list the manifests here or at the top level (manifests: [k8s/])")
		}
		cfg.Environments[name] = env
	}

	if v, ok := fields["promotion"]; ok {
		if cfg.Promotion, err = p.order(v, cfg); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// validName keeps environment names usable as flag values and in messages.
func validName(s string) string {
	if s == "" {
		return "an environment needs a name"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return "environment names use lower-case letters, digits, '-' and '_'"
		}
	}
	return ""
}

func (p *parser) order(v *yaml.Node, cfg *Config) ([]string, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, p.errf(v, "promotion", "must be a list of environment names in order, e.g. [dev, staging, production]")
	}
	var out []string
	for i, n := range v.Content {
		path := fmt.Sprintf("promotion[%d]", i)
		name, err := p.str(n, path)
		if err != nil {
			return nil, err
		}
		if _, ok := cfg.Environments[name]; !ok {
			return nil, p.errf(n, path, "unknown environment %q; environments are %s", name, strings.Join(sortedKeys(cfg.Environments), ", "))
		}
		if slices.Contains(out, name) {
			return nil, p.errf(n, path, "%q appears twice: %s is a cycle; list each environment once", name, strings.Join(append(out, name), " → "))
		}
		out = append(out, name)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (p *parser) environment(v *yaml.Node, path, name, dir string) (*Environment, error) {
	fields, err := p.mapping(v, path, "cluster", "namespace", "timeout", "onFailure", "approval", "manifests", "access", "notify",
		"bake", "onIrreversible", "requireProbes")
	if err != nil {
		return nil, err
	}
	env := &Environment{Name: name, Timeout: DefaultTimeout, OnFailure: DefaultOnFailure,
		Approval: Approval{Timeout: DefaultApprovalWait, TimeoutAction: DefaultApprovalTimed}}
	n, ok := fields["cluster"]
	if !ok {
		return nil, p.errf(v, path+".cluster", "required: name the kubeconfig context of this environment's cluster")
	}
	if env.Cluster, err = p.str(n, path+".cluster"); err != nil {
		return nil, err
	}
	if env.Cluster == "" {
		return nil, p.errf(n, path+".cluster", "must name a kubeconfig context")
	}
	n, ok = fields["namespace"]
	if !ok {
		return nil, p.errf(v, path+".namespace", "required: name the namespace this environment deploys to")
	}
	if env.Namespace, err = p.str(n, path+".namespace"); err != nil {
		return nil, err
	}
	if env.Namespace == "" {
		return nil, p.errf(n, path+".namespace", "must not be empty")
	}
	if n, ok := fields["timeout"]; ok {
		if env.Timeout, err = p.duration(n, path+".timeout"); err != nil {
			return nil, err
		}
	}
	if n, ok := fields["onFailure"]; ok {
		if env.OnFailure, err = p.str(n, path+".onFailure"); err != nil {
			return nil, err
		}
		switch env.OnFailure {
		case "rollback", "approve", "hold", "none":
		default:
			return nil, p.errf(n, path+".onFailure", "must be rollback, approve, hold or none, got %q", env.OnFailure)
		}
	}
	if n, ok := fields["approval"]; ok {
		af, err := p.mapping(n, path+".approval", "timeout", "timeoutAction")
		if err != nil {
			return nil, err
		}
		if t, ok := af["timeout"]; ok {
			if env.Approval.Timeout, err = p.duration(t, path+".approval.timeout"); err != nil {
				return nil, err
			}
		}
		if t, ok := af["timeoutAction"]; ok {
			if env.Approval.TimeoutAction, err = p.str(t, path+".approval.timeoutAction"); err != nil {
				return nil, err
			}
			if a := env.Approval.TimeoutAction; a != "rollback" && a != "reject" {
				return nil, p.errf(t, path+".approval.timeoutAction", "must be rollback or reject, got %q", a)
			}
		}
	}
	if n, ok := fields["manifests"]; ok {
		if env.Manifests, err = p.paths(n, path+".manifests", dir); err != nil {
			return nil, err
		}
	}
	if n, ok := fields["access"]; ok {
		if env.Access, err = p.access(n, path+".access"); err != nil {
			return nil, err
		}
	}
	if n, ok := fields["notify"]; ok {
		if env.Notify, err = p.strings(n, path+".notify"); err != nil {
			return nil, err
		}
	}
	if err := p.releasePhases(fields, path, env); err != nil {
		return nil, err
	}
	return env, nil
}

func (p *parser) access(v *yaml.Node, path string) (*access.Policy, error) {
	fields, err := p.mapping(v, path, "provider", "allowCIDRs", "podSelector")
	if err != nil {
		return nil, err
	}
	var pol access.Policy
	if n, ok := fields["provider"]; ok {
		if pol.Provider, err = p.str(n, path+".provider"); err != nil {
			return nil, err
		}
	}
	if n, ok := fields["allowCIDRs"]; ok {
		if pol.AllowCIDRs, err = p.strings(n, path+".allowCIDRs"); err != nil {
			return nil, err
		}
	}
	if n, ok := fields["podSelector"]; ok {
		if n.Kind != yaml.MappingNode {
			return nil, p.errf(n, path+".podSelector", "must be a mapping of label names to values")
		}
		pol.PodSelector = map[string]string{}
		for i := 0; i < len(n.Content); i += 2 {
			val, err := p.str(n.Content[i+1], path+".podSelector."+n.Content[i].Value)
			if err != nil {
				return nil, err
			}
			pol.PodSelector[n.Content[i].Value] = val
		}
	}
	valid, err := access.Validate(pol)
	if err != nil {
		// Point at the offending key: access errors start with it ("allowCIDRs[1]: ...").
		key, msg, _ := strings.Cut(err.Error(), ": ")
		node := v
		base, _, _ := strings.Cut(key, "[")
		if n, ok := fields[base]; ok {
			node = n
			if i := indexOf(key); i >= 0 && i < len(n.Content) {
				node = n.Content[i]
			}
		}
		return nil, p.errf(node, path+"."+key, "%s", msg)
	}
	return &valid, nil
}

// indexOf returns N of "key[N]", or -1.
func indexOf(key string) int {
	_, rest, ok := strings.Cut(key, "[")
	if !ok {
		return -1
	}
	var i int
	if _, err := fmt.Sscanf(rest, "%d]", &i); err != nil {
		return -1
	}
	return i
}

// mapping checks v is a mapping whose keys are all known, without duplicates, and returns its values.
func (p *parser) mapping(v *yaml.Node, path string, known ...string) (map[string]*yaml.Node, error) {
	if v.Kind == yaml.DocumentNode && len(v.Content) > 0 {
		v = v.Content[0]
	}
	if v.Kind != yaml.MappingNode {
		what := "the file"
		if path != "" {
			what = path
		}
		return nil, &Error{File: p.file, Line: v.Line, Msg: what + " must be a mapping of keys to values"}
	}
	out := map[string]*yaml.Node{}
	for i := 0; i < len(v.Content); i += 2 {
		k := v.Content[i]
		kp := k.Value
		if path != "" {
			kp = path + "." + k.Value
		}
		if !slices.Contains(known, k.Value) {
			return nil, p.errf(k, kp, "unknown key; known keys here are %s", strings.Join(known, ", "))
		}
		if _, dup := out[k.Value]; dup {
			return nil, p.errf(k, kp, "set twice")
		}
		out[k.Value] = v.Content[i+1]
	}
	return out, nil
}

func (p *parser) str(v *yaml.Node, path string) (string, error) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		return "", p.errf(v, path, "must be a string")
	}
	return strings.TrimSpace(v.Value), nil
}

func (p *parser) strings(v *yaml.Node, path string) ([]string, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, p.errf(v, path, "must be a list")
	}
	var out []string
	for i, n := range v.Content {
		s, err := p.str(n, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (p *parser) paths(v *yaml.Node, path, dir string) ([]string, error) {
	list, err := p.strings(v, path)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, p.errf(v, path, "must list at least one file or folder")
	}
	for i, s := range list {
		if s == "" || s == "-" {
			return nil, p.errf(v.Content[i], fmt.Sprintf("%s[%d]", path, i), "must be a file or folder path")
		}
		if !filepath.IsAbs(s) {
			list[i] = filepath.Join(dir, s)
		}
	}
	return list, nil
}

// releasePhases reads an environment's bake window, irreversible-step policy and probe requirement.
func (p *parser) releasePhases(fields map[string]*yaml.Node, path string, env *Environment) error {
	var err error
	if n, ok := fields["bake"]; ok {
		if env.Bake, err = p.duration(n, path+".bake"); err != nil {
			return err
		}
	}
	if n, ok := fields["onIrreversible"]; ok {
		if env.OnIrreversible, err = p.str(n, path+".onIrreversible"); err != nil {
			return err
		}
		if o := env.OnIrreversible; o != "hold" && o != "approve" && o != "rollback" {
			return p.errf(n, path+".onIrreversible", "must be hold, approve or rollback, got %q", o)
		}
	}
	if n, ok := fields["requireProbes"]; ok {
		if n.Kind != yaml.ScalarNode || (n.Value != "true" && n.Value != "false") {
			return p.errf(n, path+".requireProbes", "must be true or false, got %q", n.Value)
		}
		env.RequireProbes = n.Value == "true"
	}
	return nil
}

func (p *parser) duration(v *yaml.Node, path string) (time.Duration, error) {
	s, err := p.str(v, path)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, p.errf(v, path, "must be a positive duration such as 90s, 5m or 1h, got %q", s)
	}
	return d, nil
}
