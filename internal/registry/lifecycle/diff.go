package lifecycle

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Change is one difference between two policies, by rulePriority (what identifies a rule to ECR).
type Change struct {
	RulePriority int `json:"rulePriority"`
	// Kind is added, removed or changed.
	Kind string `json:"kind"`
	// Fields lists, for a changed rule, each field that differs: "selection.countNumber: 5 → 3".
	Fields []string `json:"fields,omitempty"`
	// Rule is the rule as compact JSON (the new one, or the removed one).
	Rule string `json:"rule"`
}

// Diff compares two policies rule by rule, in rulePriority order. Formatting and rule order in the
// documents do not count; only what ECR would evaluate differently does.
func Diff(old, updated *Policy) []Change {
	before, after := byPriority(old), byPriority(updated)
	var out []Change
	for _, p := range unionKeys(before, after) {
		o, inOld := before[p]
		n, inNew := after[p]
		switch {
		case !inOld:
			out = append(out, Change{RulePriority: p, Kind: "added", Rule: compact(n)})
		case !inNew:
			out = append(out, Change{RulePriority: p, Kind: "removed", Rule: compact(o)})
		default:
			if fields := fieldDiff(flatten(o), flatten(n)); len(fields) > 0 {
				out = append(out, Change{RulePriority: p, Kind: "changed", Fields: fields, Rule: compact(n)})
			}
		}
	}
	return out
}

func byPriority(p *Policy) map[int]*Rule {
	out := map[int]*Rule{}
	if p == nil {
		return out
	}
	for i := range p.Rules {
		out[p.Rules[i].RulePriority] = &p.Rules[i]
	}
	return out
}

func compact(r *Rule) string {
	b, _ := json.Marshal(r)
	return string(b)
}

// flatten turns a rule into dotted paths and JSON values: {"selection.countNumber": "5", ...}.
func flatten(r *Rule) map[string]string {
	var m map[string]any
	b, _ := json.Marshal(r)
	_ = json.Unmarshal(b, &m)
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if obj, ok := v.(map[string]any); ok {
			for k, x := range obj {
				walk(strings.TrimPrefix(prefix+"."+k, "."), x)
			}
			return
		}
		s, _ := json.Marshal(v)
		out[prefix] = string(s)
	}
	walk("", m)
	return out
}

func fieldDiff(a, b map[string]string) []string {
	var out []string
	for _, k := range unionKeys(a, b) {
		x, inA := a[k]
		y, inB := b[k]
		switch {
		case !inA:
			out = append(out, fmt.Sprintf("%s: (none) → %s", k, y))
		case !inB:
			out = append(out, fmt.Sprintf("%s: %s → (none)", k, x))
		case x != y:
			out = append(out, fmt.Sprintf("%s: %s → %s", k, x, y))
		}
	}
	return out
}

// unionKeys returns the keys of a and b, sorted.
func unionKeys[K cmp.Ordered, V any](a, b map[K]V) []K {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
