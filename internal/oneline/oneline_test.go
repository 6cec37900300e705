package oneline

import "testing"

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"0/3 nodes are available:\n  1 Insufficient cpu,\t2 node(s) had taints.\n": "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had taints.",
		"already one line": "already one line",
		"  \n ":            "",
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}
