package main

import (
	"bytes"
	"testing"

	"github.com/rollguard/rollguard/internal/exitcode"
)

// Every -o flag speaks one vocabulary and refuses anything else as a flag error (exit 3), before running.
func TestOutputVocabulary(t *testing.T) {
	commands := [][]string{
		{"deploy"}, {"status"}, {"rollback"}, {"undo"}, {"approve"}, {"promote"},
		{"history"}, {"envs"}, {"images", "prune"}, {"images", "previous"},
	}
	for _, c := range commands {
		for _, bad := range []string{"yaml", "xml", "TEXT"} {
			var out, errb bytes.Buffer
			root := newRootCmd(&out, &errb)
			root.SetArgs(append(append([]string{}, c...), "-o", bad))
			err := root.Execute()
			if exitcode.Of(err) != exitcode.BadInput || err == nil || !bytes.Contains([]byte(err.Error()), []byte("must be text or json")) {
				t.Errorf("%v -o %s: %v (exit %d), want a flag error naming text and json", c, bad, err, exitcode.Of(err))
			}
		}
	}
	var f format
	for in, want := range map[string]format{"text": formatText, "json": formatJSON, "table": formatText} {
		if err := f.Set(in); err != nil || f != want {
			t.Errorf("Set(%q) = %q, %v; want %q", in, f, err, want)
		}
	}
}
