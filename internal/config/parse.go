package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rollguard/rollguard/internal/access"
)

// The parser walks rollguard.yaml's node tree section by section, so each error carries the line and the
// key path of the node that is wrong.

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
