package lifecycle

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func daysAgo(d int) time.Time { return now.AddDate(0, 0, -d) }

func mustParse(t *testing.T, doc string) *Policy {
	t.Helper()
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

// verdicts maps digest -> action, and digest -> claiming rule.
func verdicts(plan *Plan) (map[string]Verdict, map[string]int) {
	v, r := map[string]Verdict{}, map[string]int{}
	for _, d := range plan.Decisions {
		v[d.Image.Digest] = d.Action
		r[d.Image.Digest] = d.Rule
	}
	return v, r
}

func rule(prio int, sel string) string {
	return fmt.Sprintf(`{"rulePriority": %d, "description": "r%d", "selection": {%s}, "action": {"type": "expire"}}`, prio, prio, sel)
}

func policy(rules ...string) string { return `{"rules": [` + strings.Join(rules, ",") + `]}` }

func TestEvaluate(t *testing.T) {
	// The two multi-rule examples of the ECR user guide ("Examples of lifecycle policies", Example A and B).
	exampleA := []Image{
		{Digest: "A", Tags: []string{"beta-1", "prod-1"}, Pushed: daysAgo(10)},
		{Digest: "B", Tags: []string{"beta-2", "prod-2"}, Pushed: daysAgo(9)},
		{Digest: "C", Tags: []string{"beta-3"}, Pushed: daysAgo(8)},
	}
	exampleB := []Image{
		{Digest: "A", Tags: []string{"beta-1", "prod-1"}, Pushed: daysAgo(10)},
		{Digest: "B", Tags: []string{"beta-2", "prod-2"}, Pushed: daysAgo(9)},
		{Digest: "C", Tags: []string{"beta-3", "prod-3"}, Pushed: daysAgo(8)},
	}
	releases := []Image{
		{Digest: "r0", Tags: []string{"1.0.0"}, Pushed: daysAgo(40)},
		{Digest: "r1", Tags: []string{"1.0.1"}, Pushed: daysAgo(30)},
		{Digest: "r2", Tags: []string{"1.0.2"}, Pushed: daysAgo(20)},
		{Digest: "r3", Tags: []string{"1.0.3", "latest"}, Pushed: daysAgo(10)},
		{Digest: "u0", Pushed: daysAgo(35)},
		{Digest: "u1", Pushed: daysAgo(25)},
		{Digest: "u2", Pushed: daysAgo(5)},
		{Digest: "dev", Tags: []string{"dev-abc"}, Pushed: daysAgo(50)},
	}
	count := func(status, list string, n int) string {
		s := fmt.Sprintf(`"tagStatus": %q, "countType": "imageCountMoreThan", "countNumber": %d`, status, n)
		if list != "" {
			s += ", " + list
		}
		return s
	}
	age := func(status, list string, days int) string {
		s := fmt.Sprintf(`"tagStatus": %q, "countType": "sinceImagePushed", "countUnit": "days", "countNumber": %d`, status, days)
		if list != "" {
			s += ", " + list
		}
		return s
	}

	tests := []struct {
		name    string
		policy  string
		images  []Image
		protect []Protection
		want    map[string]Verdict
		rules   map[string]int // optional: claiming rule per digest
	}{{
		name:   "ECR example A: B is matched by rule 1 so rule 2 cannot expire it",
		policy: policy(rule(1, count("tagged", `"tagPrefixList": ["prod"]`, 1)), rule(2, count("tagged", `"tagPrefixList": ["beta"]`, 1))),
		images: exampleA,
		want:   map[string]Verdict{"A": Expire, "B": Keep, "C": Keep},
		rules:  map[string]int{"A": 1, "B": 1, "C": 2},
	}, {
		name:   "ECR example B: rule 1 expires A and B",
		policy: policy(rule(1, count("tagged", `"tagPrefixList": ["prod"]`, 1)), rule(2, count("tagged", `"tagPrefixList": ["beta"]`, 1))),
		images: exampleB,
		want:   map[string]Verdict{"A": Expire, "B": Expire, "C": Keep},
	}, {
		name:   "ECR example A with tagPatternList",
		policy: policy(rule(1, count("tagged", `"tagPatternList": ["prod*"]`, 1)), rule(2, count("tagged", `"tagPatternList": ["beta*"]`, 1))),
		images: exampleA,
		want:   map[string]Verdict{"A": Expire, "B": Keep, "C": Keep},
	}, {
		name:   "imageCountMoreThan keeps the newest N tagged",
		policy: policy(rule(1, count("tagged", `"tagPrefixList": ["1."]`, 2))),
		images: releases,
		want: map[string]Verdict{"r0": Expire, "r1": Expire, "r2": Keep, "r3": Keep,
			"u0": Keep, "u1": Keep, "u2": Keep, "dev": Keep},
	}, {
		name:   "sinceImagePushed expires older than N days",
		policy: policy(rule(1, age("tagged", `"tagPatternList": ["1.0.*"]`, 25))),
		images: releases,
		want: map[string]Verdict{"r0": Expire, "r1": Expire, "r2": Keep, "r3": Keep,
			"u0": Keep, "u1": Keep, "u2": Keep, "dev": Keep},
	}, {
		name:   "untagged count",
		policy: policy(rule(1, count("untagged", "", 1))),
		images: releases,
		want: map[string]Verdict{"r0": Keep, "r1": Keep, "r2": Keep, "r3": Keep,
			"u0": Expire, "u1": Expire, "u2": Keep, "dev": Keep},
	}, {
		name:   "untagged age",
		policy: policy(rule(1, age("untagged", "", 30))),
		images: releases,
		want: map[string]Verdict{"r0": Keep, "r1": Keep, "r2": Keep, "r3": Keep,
			"u0": Expire, "u1": Keep, "u2": Keep, "dev": Keep},
	}, {
		name:   "any count counts tagged and untagged together",
		policy: policy(rule(1, count("any", "", 3))),
		images: releases,
		want: map[string]Verdict{"u2": Keep, "r3": Keep, "r2": Keep,
			"u1": Expire, "r1": Expire, "u0": Expire, "r0": Expire, "dev": Expire},
	}, {
		name: "the issue's policy: keep 2 releases, 1 untagged, expire the rest after 15 days",
		policy: policy(
			rule(1, count("tagged", `"tagPrefixList": ["1."]`, 2)),
			rule(2, count("untagged", "", 1)),
			rule(3, age("any", "", 15)),
		),
		images: releases,
		want: map[string]Verdict{"r0": Expire, "r1": Expire, "r2": Keep, "r3": Keep,
			"u0": Expire, "u1": Expire, "u2": Keep, "dev": Expire},
		rules: map[string]int{"r0": 1, "r2": 1, "u2": 2, "dev": 3},
	}, {
		name: "a young image matched by a high-priority age rule is safe from a lower count rule",
		policy: policy(
			rule(1, age("tagged", `"tagPrefixList": ["1.0.3"]`, 365)),
			rule(2, count("tagged", `"tagPatternList": ["*"]`, 1)),
		),
		images: releases,
		// rule 2 counts r3 (claimed by rule 1) as its newest, so it expires every other tagged image.
		want: map[string]Verdict{"r3": Keep, "r2": Expire, "r1": Expire, "r0": Expire, "dev": Expire,
			"u0": Keep, "u1": Keep, "u2": Keep},
		rules: map[string]int{"r3": 1, "r2": 2},
	}, {
		name:   "rules are evaluated by priority, not by position in the document",
		policy: policy(rule(20, count("tagged", `"tagPrefixList": ["beta"]`, 1)), rule(10, count("tagged", `"tagPrefixList": ["prod"]`, 1))),
		images: exampleA,
		want:   map[string]Verdict{"A": Expire, "B": Keep, "C": Keep},
		rules:  map[string]int{"A": 10, "B": 10, "C": 20},
	}, {
		name:   "tag lists need every entry matched by some tag",
		policy: policy(rule(1, count("tagged", `"tagPrefixList": ["beta", "prod"]`, 1))),
		images: exampleA,
		want:   map[string]Verdict{"A": Expire, "B": Keep, "C": Keep},
		rules:  map[string]int{"A": 1, "B": 1, "C": 0},
	}, {
		name:   "protection vetoes expiry and is reported",
		policy: policy(rule(1, count("tagged", `"tagPrefixList": ["1."]`, 1))),
		images: releases,
		protect: []Protection{
			{Digest: "r2", Why: "rollback target of web"},
			{Digest: "r0", Why: "running in prod/web"},
			{Digest: "r3", Why: "running in staging/web"},
			{Digest: "absent", Why: "not in this repository"},
		},
		want: map[string]Verdict{"r0": Protected, "r1": Expire, "r2": Protected, "r3": Protected},
	}, {
		name:   "images without a known time are never expired and take a keep slot",
		policy: policy(rule(1, count("any", "", 1))),
		images: []Image{
			{Digest: "epoch", Tags: []string{"ko"}, Pushed: time.Unix(0, 0)},
			{Digest: "new", Tags: []string{"a"}, Pushed: daysAgo(1)},
			{Digest: "old", Tags: []string{"b"}, Pushed: daysAgo(2)},
		},
		want: map[string]Verdict{"epoch": Keep, "new": Expire, "old": Expire},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.policy)
			plan := Evaluate(p, tt.images, tt.protect, now)
			got, rules := verdicts(plan)
			for digest, want := range tt.want {
				if got[digest] != want {
					t.Errorf("image %s: action %s, want %s (plan: %+v)", digest, got[digest], want, plan.Decisions)
				}
			}
			for digest, want := range tt.rules {
				if rules[digest] != want {
					t.Errorf("image %s: claimed by rule %d, want %d", digest, rules[digest], want)
				}
			}
			if len(plan.Decisions) != len(tt.images) {
				t.Errorf("plan has %d decisions for %d images", len(plan.Decisions), len(tt.images))
			}
			for _, d := range plan.Decisions {
				if d.Action == Protected && !strings.Contains(d.Why, d.ProtectedBy[0]) {
					t.Errorf("protected image %s does not say why: %q", d.Image.Digest, d.Why)
				}
			}
		})
	}
}

func TestPlanOrderNewestFirst(t *testing.T) {
	p := mustParse(t, policy(rule(1, `"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1`)))
	plan := Evaluate(p, []Image{
		{Digest: "b", Pushed: daysAgo(2)}, {Digest: "c", Pushed: daysAgo(1)}, {Digest: "a", Pushed: daysAgo(3)},
	}, nil, now)
	var order []string
	for _, d := range plan.Decisions {
		order = append(order, d.Image.Digest)
	}
	if !slices.Equal(order, []string{"c", "b", "a"}) {
		t.Fatalf("order %v, want newest first [c b a]", order)
	}
}

func TestPattern(t *testing.T) {
	tests := []struct {
		pattern, tag string
		want         bool
	}{
		{"prod", "prod", true},
		{"prod", "prod1", false},
		{"prod*", "prod", true},
		{"prod*", "prod-2", true},
		{"prod*", "xprod", false},
		{"*prod", "xprod", true},
		{"*", "anything", true},
		{"*test*1*2*3", "my-test-1-2-3", true},
		{"*test*1*2*3", "my-test-1-3-2", false},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"v*.*.*", "v1.2.3", true},
		{"v*.*.*", "v1.2", false},
	}
	for _, tt := range tests {
		if got := compile(tt.pattern).match(tt.tag); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.pattern, tt.tag, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	ok := `"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 5`
	tests := []struct {
		name, doc string
		want      []string // substrings of the error
	}{
		{"not JSON", `{"rules": [`, []string{"policy: not a JSON object"}},
		{"unknown top-level field", `{"rules": [], "version": 1}`, []string{`unknown field "version"`}},
		{"no rules", `{"rules": []}`, []string{"empty"}},
		{"unknown rule field", `{"rules": [{"rulePriority": 3, "selection": {` + ok + `}, "action": {"type": "expire"}, "priority": 1}]}`,
			[]string{"rule 1 (rulePriority 3)", `unknown field "priority"`}},
		{"case matters", `{"rules": [{"RulePriority": 3, "selection": {` + ok + `}, "action": {"type": "expire"}}]}`,
			[]string{"rule 1", `unknown field "RulePriority"`}},
		{"unknown selection field", policy(rule(7, ok+`, "tagPrefix": ["x"]`)), []string{"rule 1 (rulePriority 7)", `selection: unknown field "tagPrefix"`}},
		{"missing priority", `{"rules": [{"selection": {` + ok + `}, "action": {"type": "expire"}}]}`, []string{"rule 1:", "rulePriority is required"}},
		{"zero priority", policy(rule(0, ok)), []string{"rulePriority must be 1 or more"}},
		{"fractional priority", `{"rules": [{"rulePriority": 1.5, "selection": {` + ok + `}, "action": {"type": "expire"}}]}`, []string{"rule 1 (rulePriority 1.5)", "rulePriority must be an integer"}},
		{"duplicate priority", policy(rule(1, ok), rule(1, strings.Replace(ok, `["v"]`, `["w"]`, 1))), []string{"rule 2 (rulePriority 1)", "already used by rule 1"}},
		{"missing selection", `{"rules": [{"rulePriority": 1, "action": {"type": "expire"}}]}`, []string{"selection is required"}},
		{"bad tagStatus", policy(rule(2, `"tagStatus": "all", "countType": "imageCountMoreThan", "countNumber": 1`)), []string{"rule 1 (rulePriority 2)", `selection.tagStatus "all"`}},
		{"tagged without list", policy(rule(1, `"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1`)), []string{"needs a non-empty tagPrefixList or tagPatternList"}},
		{"prefix and pattern", policy(rule(1, ok+`, "tagPatternList": ["v*"]`)), []string{"cannot be used in the same rule"}},
		{"untagged with list", policy(rule(1, `"tagStatus": "untagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 1`)), []string{"only allowed with tagStatus tagged"}},
		{"any with list", policy(rule(1, `"tagStatus": "any", "tagPatternList": ["v*"], "countType": "imageCountMoreThan", "countNumber": 1`)), []string{"only allowed with tagStatus tagged"}},
		{"too many wildcards", policy(rule(1, `"tagStatus": "tagged", "tagPatternList": ["test*1*2*3*4*5*6"], "countType": "imageCountMoreThan", "countNumber": 1`)), []string{"6 wildcards", "at most 4"}},
		{"missing countType", policy(rule(1, `"tagStatus": "any", "countNumber": 1`)), []string{"selection.countType is required"}},
		{"pull time", policy(rule(1, `"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 1`)), []string{"sinceImagePulled is not supported"}},
		{"unit on count", policy(rule(1, ok+`, "countUnit": "days"`)), []string{"countUnit is only allowed with countType sinceImagePushed"}},
		{"age without unit", policy(rule(1, `"tagStatus": "any", "countType": "sinceImagePushed", "countNumber": 1`)), []string{"countUnit is required"}},
		{"hours", policy(rule(1, `"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "hours", "countNumber": 1`)), []string{`countUnit "hours" is not supported`}},
		{"zero count", policy(rule(4, `"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 0`)), []string{"rule 1 (rulePriority 4)", "countNumber must be a positive integer"}},
		{"missing count", policy(rule(4, `"tagStatus": "any", "countType": "imageCountMoreThan"`)), []string{"countNumber is required"}},
		{"string count", policy(rule(4, `"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": "5"`)), []string{"countNumber must be an integer"}},
		{"missing action", `{"rules": [{"rulePriority": 1, "selection": {` + ok + `}}]}`, []string{"action is required"}},
		{"transition", `{"rules": [{"rulePriority": 1, "selection": {` + ok + `}, "action": {"type": "transition", "targetStorageClass": "archive"}}]}`, []string{`"transition" is not supported`}},
		{"archive class", policy(rule(1, ok+`, "storageClass": "archive"`)), []string{`storageClass "archive" is not supported`}},
		{"any not last", policy(rule(5, `"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1`), rule(6, ok)), []string{"rule 1 (rulePriority 5)", "tagStatus any must have the highest rulePriority"}},
		{"two untagged", policy(rule(1, `"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1`), rule(2, `"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 2`)), []string{"rule 2 (rulePriority 2)", "only one rule may select untagged"}},
		{"same prefixes", policy(rule(1, ok), rule(2, strings.Replace(ok, "5", "9", 1))), []string{"rule 2 (rulePriority 2)", "repeats the prefixes of rule 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse accepted %s", tt.doc)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestParseAcceptsECRDocuments(t *testing.T) {
	// Documents as written for ECR, unchanged (the user guide's examples and the policy).
	docs := []string{
		`{"rules": [{"rulePriority": 1, "description": "Expire images older than 14 days", "selection": {"tagStatus": "tagged", "tagPatternList": ["prod*"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14}, "action": {"type": "expire"}}]}`,
		`{"rules": [
		  {"rulePriority": 1, "description": "keep 5 latest", "selection": {"tagStatus": "tagged", "tagPrefixList": ["latest"], "countType": "imageCountMoreThan", "countNumber": 5}, "action": {"type": "expire"}},
		  {"rulePriority": 2, "description": "keep 2 untagged", "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 2}, "action": {"type": "expire"}},
		  {"rulePriority": 3, "description": "expire the rest", "selection": {"tagStatus": "any", "storageClass": "standard", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}, "action": {"type": "expire"}}
		]}`,
	}
	for _, d := range docs {
		if _, err := Parse([]byte(d)); err != nil {
			t.Errorf("Parse rejected a valid ECR document: %v", err)
		}
	}
}

func TestPrevious(t *testing.T) {
	images := []Image{
		{Digest: "a", Tags: []string{"1.0.0"}, Pushed: daysAgo(3)},
		{Digest: "b", Tags: []string{"1.0.1", "sha-b"}, Pushed: daysAgo(2)},
		{Digest: "c", Tags: []string{"1.0.2", "latest"}, Pushed: daysAgo(1)},
		{Digest: "d", Tags: []string{"dev-x"}, Pushed: daysAgo(0)},
		{Digest: "u", Pushed: daysAgo(0)},
	}
	tests := []struct {
		prefix   string
		images   []Image
		digest   string
		tags     []string
		errMatch string
	}{
		{prefix: "1.", images: images, digest: "b", tags: []string{"1.0.1"}},
		{prefix: "", images: images, digest: "c", tags: []string{"1.0.2", "latest"}},
		{prefix: "dev-", images: images, errMatch: "found 1 images tagged with prefix \"dev-\""},
		{prefix: "", images: append(slices.Clone(images), Image{Digest: "e", Tags: []string{"x"}, Pushed: daysAgo(1)}), errMatch: "same push time"},
		{prefix: "", images: append(slices.Clone(images), Image{Digest: "e", Tags: []string{"x"}}), errMatch: "no push or created time"},
	}
	for _, tt := range tests {
		img, tags, err := Previous(tt.images, tt.prefix)
		if tt.errMatch != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errMatch) {
				t.Errorf("Previous(%q) error %v, want %q", tt.prefix, err, tt.errMatch)
			}
			continue
		}
		if err != nil {
			t.Errorf("Previous(%q): %v", tt.prefix, err)
			continue
		}
		if img.Digest != tt.digest || !slices.Equal(tags, tt.tags) {
			t.Errorf("Previous(%q) = %s %v, want %s %v", tt.prefix, img.Digest, tags, tt.digest, tt.tags)
		}
	}
}
