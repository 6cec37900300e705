package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Typed readers of single YAML nodes (mappings, strings, paths, durations), each failing with the node's
// line and key path.

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
