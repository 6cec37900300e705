package report

import (
	"bytes"
	"strings"
	"testing"
)

// TestOutputsOneLinePerKey: cluster text with line breaks and '=' must not add or split lines, or a later
// step would read a forged key.
func TestOutputsOneLinePerKey(t *testing.T) {
	r := Result{Release: "web.v12", Command: "deploy", Outcome: Failed, ExitCode: 2,
		Message: "pull failed:\nROLLGUARD_OUTCOME=succeeded\r\nsee a=b"}
	var b bytes.Buffer
	if err := Outputs(&b, r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 7 {
		t.Fatalf("want 7 lines, got %d:\n%s", len(lines), b.String())
	}
	got := map[string]string{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "=")
		if _, dup := got[k]; dup {
			t.Fatalf("key %s written twice:\n%s", k, b.String())
		}
		got[k] = v
	}
	want := map[string]string{"ROLLGUARD_RELEASE": "web.v12", "ROLLGUARD_REVISION": "12", "ROLLGUARD_OUTCOME": "failed",
		"ROLLGUARD_ROLLED_BACK": "false", "ROLLGUARD_EXIT_CODE": "2", "ROLLGUARD_MESSAGE": "pull failed: ROLLGUARD_OUTCOME=succeeded see a=b"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestRevisionOf(t *testing.T) {
	for in, want := range map[string]string{"web.v7": "7", "my.video.v12": "12", "web": "", "web.vx": "", "": "", "a.v": ""} {
		if got := revisionOf(in); got != want {
			t.Errorf("revisionOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRollbackCommandCountsAsRolledBack(t *testing.T) {
	for _, c := range []string{"rollback", "undo"} {
		if !backOnPrevious(Result{Command: c, Outcome: Succeeded}) {
			t.Errorf("a succeeded %s command should report rolled back", c)
		}
	}
	if backOnPrevious(Result{Command: "deploy", Outcome: Succeeded}) {
		t.Error("a succeeded deploy is not a rollback")
	}
}
