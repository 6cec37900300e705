package lifecycle

import (
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	parse := func(s string) *Policy { return mustParse(t, s) }
	a := parse(`{"rules": [
		{"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 2}, "action": {"type": "expire"}},
		{"rulePriority": 1, "description": "releases", "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 5}, "action": {"type": "expire"}}]}`)
	// The same rules, reordered and reformatted: no change.
	same := parse(`{"rules":[{"rulePriority":1,"description":"releases","selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}},{"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}`)
	if d := Diff(a, same); len(d) != 0 {
		t.Errorf("reordered policy differs: %+v", d)
	}
	b := parse(`{"rules": [
		{"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["v*"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}},
		{"rulePriority": 9, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 50}, "action": {"type": "expire"}}]}`)
	d := Diff(a, b)
	if len(d) != 3 || d[0].Kind != "changed" || d[1].Kind != "removed" || d[1].RulePriority != 2 || d[2].Kind != "added" || d[2].RulePriority != 9 {
		t.Fatalf("diff %+v", d)
	}
	want := []string{
		`description: "releases" → (none)`,
		`selection.countNumber: 5 → 30`,
		`selection.countType: "imageCountMoreThan" → "sinceImagePushed"`,
		`selection.countUnit: (none) → "days"`,
		`selection.tagPatternList: (none) → ["v*"]`,
		`selection.tagPrefixList: ["v"] → (none)`,
	}
	if !slices.Equal(d[0].Fields, want) {
		t.Errorf("fields\n got %q\nwant %q", d[0].Fields, want)
	}
	if d := Diff(nil, a); len(d) != 2 || d[0].Kind != "added" || d[1].Kind != "added" {
		t.Errorf("diff from no policy: %+v", d)
	}
}
