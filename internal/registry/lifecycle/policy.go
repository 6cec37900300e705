// Package lifecycle reads an AWS ECR lifecycle policy document and evaluates it, purely, against a list of
// images: policy and images in, plan out. It talks to no registry; internal/registry does that.
//
// The semantics follow the ECR user guide ("Lifecycle policy properties" and "Lifecycle policy evaluation
// rules"); docs/registry.md lists each rule with its source and the few places where we differ.
package lifecycle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// TagStatus selects images by whether they carry tags.
type TagStatus string

const (
	Tagged   TagStatus = "tagged"
	Untagged TagStatus = "untagged"
	Any      TagStatus = "any"
)

// CountType is how a rule limits the images it selects.
type CountType string

const (
	// ImageCountMoreThan keeps the newest countNumber selected images and expires the rest.
	ImageCountMoreThan CountType = "imageCountMoreThan"
	// SinceImagePushed expires selected images pushed more than countNumber countUnits ago.
	SinceImagePushed CountType = "sinceImagePushed"
)

// maxWildcards is ECR's limit of `*` per tagPatternList entry.
const maxWildcards = 4

// Policy is an ECR lifecycle policy document.
type Policy struct {
	Rules []Rule `json:"rules"`
}

// Rule is one rule of a policy.
type Rule struct {
	RulePriority int       `json:"rulePriority"`
	Description  string    `json:"description,omitempty"`
	Selection    Selection `json:"selection"`
	Action       Action    `json:"action"`

	patterns []pattern // compiled TagPatternList
}

// Selection says which images a rule considers and which of those it expires.
type Selection struct {
	TagStatus      TagStatus `json:"tagStatus"`
	TagPrefixList  []string  `json:"tagPrefixList,omitempty"`
	TagPatternList []string  `json:"tagPatternList,omitempty"`
	StorageClass   string    `json:"storageClass,omitempty"`
	CountType      CountType `json:"countType"`
	CountUnit      string    `json:"countUnit,omitempty"`
	CountNumber    int       `json:"countNumber"`
}

// Action is what a rule does to the images it marks; only "expire" exists for registries other than ECR.
type Action struct {
	Type               string `json:"type"`
	TargetStorageClass string `json:"targetStorageClass,omitempty"`
}

// Field sets of the document. Keys are checked by hand, exactly (encoding/json matches case-insensitively
// and would accept "RulePriority", which ECR rejects).
var (
	policyFields    = []string{"rules"}
	ruleFields      = []string{"rulePriority", "description", "selection", "action"}
	selectionFields = []string{"tagStatus", "tagPrefixList", "tagPatternList", "storageClass", "countType", "countUnit", "countNumber"}
	actionFields    = []string{"type", "targetStorageClass"}
)

// Parse reads and validates a policy document. Errors name the rule (its index and rulePriority) and the field,
// so a pipeline log shows what to fix.
func Parse(data []byte) (*Policy, error) {
	top, err := object(data, policyFields)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	raw, ok := top["rules"]
	if !ok {
		return nil, fmt.Errorf(`policy: missing "rules"`)
	}
	var rawRules []json.RawMessage
	if err := json.Unmarshal(raw, &rawRules); err != nil {
		return nil, fmt.Errorf(`policy: "rules" must be a list of rules`)
	}
	if len(rawRules) == 0 {
		return nil, fmt.Errorf(`policy: "rules" is empty; a policy needs at least one rule`)
	}
	p := &Policy{Rules: make([]Rule, 0, len(rawRules))}
	for i, rr := range rawRules {
		r, err := parseRule(rr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ruleName(i, rr), err)
		}
		p.Rules = append(p.Rules, r)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// ruleName names a rule for an error: by index, plus its rulePriority when one can be read.
func ruleName(i int, raw json.RawMessage) string {
	var peek struct {
		RulePriority *json.Number `json:"rulePriority"`
	}
	if json.Unmarshal(raw, &peek) == nil && peek.RulePriority != nil {
		return fmt.Sprintf("rule %d (rulePriority %s)", i+1, peek.RulePriority.String())
	}
	return fmt.Sprintf("rule %d", i+1)
}

// object decodes a JSON object and refuses keys outside allowed.
func object(data []byte, allowed []string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil || m == nil {
		if err == nil {
			err = fmt.Errorf("null")
		}
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the JSON object")
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			return nil, fmt.Errorf("unknown field %q (allowed: %s)", k, strings.Join(allowed, ", "))
		}
	}
	return m, nil
}

// field decodes m[key] into v; present reports whether the key was there.
func field(m map[string]json.RawMessage, key, path, want string, v any) (present bool, err error) {
	raw, ok := m[key]
	if !ok || string(raw) == "null" {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("%s must be %s, got %s", path, want, raw)
	}
	return true, nil
}

func parseRule(raw json.RawMessage) (Rule, error) {
	var r Rule
	m, err := object(raw, ruleFields)
	if err != nil {
		return r, err
	}
	if ok, err := field(m, "rulePriority", "rulePriority", "an integer", &r.RulePriority); err != nil {
		return r, err
	} else if !ok {
		return r, fmt.Errorf("rulePriority is required")
	}
	if r.RulePriority < 1 {
		return r, fmt.Errorf("rulePriority must be 1 or more, got %d", r.RulePriority)
	}
	if _, err := field(m, "description", "description", "a string", &r.Description); err != nil {
		return r, err
	}

	selRaw, ok := m["selection"]
	if !ok {
		return r, fmt.Errorf("selection is required")
	}
	sm, err := object(selRaw, selectionFields)
	if err != nil {
		return r, fmt.Errorf("selection: %w", err)
	}
	s := &r.Selection
	if ok, err := field(sm, "tagStatus", "selection.tagStatus", "a string", &s.TagStatus); err != nil {
		return r, err
	} else if !ok {
		return r, fmt.Errorf("selection.tagStatus is required (tagged, untagged or any)")
	}
	prefixSet, err := field(sm, "tagPrefixList", "selection.tagPrefixList", "a list of strings", &s.TagPrefixList)
	if err != nil {
		return r, err
	}
	patternSet, err := field(sm, "tagPatternList", "selection.tagPatternList", "a list of strings", &s.TagPatternList)
	if err != nil {
		return r, err
	}
	if _, err := field(sm, "storageClass", "selection.storageClass", "a string", &s.StorageClass); err != nil {
		return r, err
	}
	if ok, err := field(sm, "countType", "selection.countType", "a string", &s.CountType); err != nil {
		return r, err
	} else if !ok {
		return r, fmt.Errorf("selection.countType is required (imageCountMoreThan or sinceImagePushed)")
	}
	unitSet, err := field(sm, "countUnit", "selection.countUnit", "a string", &s.CountUnit)
	if err != nil {
		return r, err
	}
	if ok, err := field(sm, "countNumber", "selection.countNumber", "an integer", &s.CountNumber); err != nil {
		return r, err
	} else if !ok {
		return r, fmt.Errorf("selection.countNumber is required")
	}

	actRaw, ok := m["action"]
	if !ok {
		return r, fmt.Errorf(`action is required ({"type": "expire"})`)
	}
	am, err := object(actRaw, actionFields)
	if err != nil {
		return r, fmt.Errorf("action: %w", err)
	}
	if ok, err := field(am, "type", "action.type", "a string", &r.Action.Type); err != nil {
		return r, err
	} else if !ok {
		return r, fmt.Errorf(`action.type is required ("expire")`)
	}
	if _, err := field(am, "targetStorageClass", "action.targetStorageClass", "a string", &r.Action.TargetStorageClass); err != nil {
		return r, err
	}

	return r, r.check(prefixSet, patternSet, unitSet)
}

// check validates one rule on its own.
func (r *Rule) check(prefixSet, patternSet, unitSet bool) error {
	s := &r.Selection
	switch s.TagStatus {
	case Tagged:
		if prefixSet && patternSet {
			return fmt.Errorf("selection: tagPrefixList and tagPatternList cannot be used in the same rule; split it into two rules")
		}
		if len(s.TagPrefixList) == 0 && len(s.TagPatternList) == 0 {
			return fmt.Errorf("selection: tagStatus tagged needs a non-empty tagPrefixList or tagPatternList")
		}
	case Untagged, Any:
		if prefixSet || patternSet {
			return fmt.Errorf("selection: tagPrefixList and tagPatternList are only allowed with tagStatus tagged, not %s", s.TagStatus)
		}
	default:
		return fmt.Errorf("selection.tagStatus %q is not one of tagged, untagged, any", s.TagStatus)
	}
	for _, p := range s.TagPrefixList {
		if p == "" {
			return fmt.Errorf("selection.tagPrefixList has an empty prefix")
		}
	}
	for _, p := range s.TagPatternList {
		if p == "" {
			return fmt.Errorf("selection.tagPatternList has an empty pattern")
		}
		if n := strings.Count(p, "*"); n > maxWildcards {
			return fmt.Errorf("selection.tagPatternList entry %q has %d wildcards; ECR allows at most %d", p, n, maxWildcards)
		}
		r.patterns = append(r.patterns, compile(p))
	}
	if s.StorageClass != "" && s.StorageClass != "standard" {
		return fmt.Errorf("selection.storageClass %q is not supported: only ECR has an archive storage class", s.StorageClass)
	}
	switch s.CountType {
	case ImageCountMoreThan:
		if unitSet {
			return fmt.Errorf("selection.countUnit is only allowed with countType sinceImagePushed")
		}
	case SinceImagePushed:
		if !unitSet {
			return fmt.Errorf(`selection.countUnit is required with countType sinceImagePushed ("days")`)
		}
		if s.CountUnit != "days" {
			return fmt.Errorf(`selection.countUnit %q is not supported; use "days"`, s.CountUnit)
		}
	case "sinceImagePulled", "sinceImageTransitioned":
		return fmt.Errorf("selection.countType %s is not supported: registries other than ECR record no pull or archive time", s.CountType)
	default:
		return fmt.Errorf("selection.countType %q is not one of imageCountMoreThan, sinceImagePushed", s.CountType)
	}
	if s.CountNumber < 1 {
		return fmt.Errorf("selection.countNumber must be a positive integer, got %d", s.CountNumber)
	}
	switch r.Action.Type {
	case "expire":
	case "transition":
		return fmt.Errorf(`action.type "transition" is not supported: only ECR has an archive storage class; use "expire"`)
	default:
		return fmt.Errorf(`action.type %q is not supported; use "expire"`, r.Action.Type)
	}
	if r.Action.TargetStorageClass != "" {
		return fmt.Errorf("action.targetStorageClass is only used with action.type transition, which is not supported")
	}
	return nil
}

// validate checks the rules against each other.
func (p *Policy) validate() error {
	byPriority := map[int]int{}
	var untagged []int
	prefixSets := map[string]int{}
	maxPriority := 0
	for _, r := range p.Rules {
		maxPriority = max(maxPriority, r.RulePriority)
	}
	for i, r := range p.Rules {
		name := fmt.Sprintf("rule %d (rulePriority %d)", i+1, r.RulePriority)
		if j, dup := byPriority[r.RulePriority]; dup {
			return fmt.Errorf("%s: rulePriority %d is already used by rule %d; priorities must be unique", name, r.RulePriority, j+1)
		}
		byPriority[r.RulePriority] = i
		switch r.Selection.TagStatus {
		case Any:
			if r.RulePriority != maxPriority {
				return fmt.Errorf("%s: a rule with tagStatus any must have the highest rulePriority (evaluated last); %d is higher", name, maxPriority)
			}
		case Untagged:
			untagged = append(untagged, i)
			if len(untagged) > 1 {
				return fmt.Errorf("%s: only one rule may select untagged images; rule %d does already", name, untagged[0]+1)
			}
		case Tagged:
			if len(r.Selection.TagPrefixList) > 0 {
				set := slices.Clone(r.Selection.TagPrefixList)
				sort.Strings(set)
				key := strings.Join(slices.Compact(set), "\x00")
				if j, dup := prefixSets[key]; dup {
					return fmt.Errorf("%s: selection.tagPrefixList %v repeats the prefixes of rule %d; each rule needs its own set of prefixes", name, r.Selection.TagPrefixList, j+1)
				}
				prefixSets[key] = i
			}
		}
	}
	// Evaluation goes by priority, lowest first.
	sort.SliceStable(p.Rules, func(a, b int) bool { return p.Rules[a].RulePriority < p.Rules[b].RulePriority })
	return nil
}

// pattern is a compiled tagPatternList entry: literal parts between `*` wildcards.
type pattern struct {
	parts []string // len(parts) == wildcards+1
}

func compile(s string) pattern { return pattern{parts: strings.Split(s, "*")} }

// match reports whether tag matches the whole pattern.
func (p pattern) match(tag string) bool {
	if len(p.parts) == 1 {
		return tag == p.parts[0]
	}
	first, last := p.parts[0], p.parts[len(p.parts)-1]
	if len(tag) < len(first)+len(last) || !strings.HasPrefix(tag, first) || !strings.HasSuffix(tag, last) {
		return false
	}
	rest := tag[len(first) : len(tag)-len(last)]
	for _, mid := range p.parts[1 : len(p.parts)-1] {
		i := strings.Index(rest, mid)
		if i < 0 {
			return false
		}
		rest = rest[i+len(mid):]
	}
	return true
}
