package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The CI template tests (ci_*_test.go) take the shell steps out of action.yml, ci/azure-pipelines/ and
// templates/ and run them with bash against the sandbox, the way each CI's runner would: template
// expressions are filled in by the test, which fails on any expression it does not know, so a template
// cannot use a value these tests never supplied.

// repoRoot is the repository's root (the tests run in e2e/).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// expand replaces every match of re in text with lookup(expression), where the expression is re's first
// group, trimmed. An expression lookup does not know fails the test.
func expand(t *testing.T, where, text string, re *regexp.Regexp, lookup func(string) (string, bool)) string {
	t.Helper()
	return re.ReplaceAllStringFunc(text, func(m string) string {
		expr := strings.TrimSpace(re.FindStringSubmatch(m)[1])
		v, ok := lookup(expr)
		if !ok {
			t.Fatalf("%s: the test does not know the expression %q; supply it in the test", where, expr)
		}
		return v
	})
}

// shellRun is one shell step's run.
type shellRun struct {
	code   int
	output string // stdout and stderr, interleaved
}

// runBash runs a script as a CI runner does (bash, a file, the given environment only) and returns its exit
// code and output. bashFlags are the runner's (GitHub: -e -o pipefail).
func runBash(t *testing.T, script string, env []string, bashFlags ...string) shellRun {
	t.Helper()
	return runShell(t, "", append([]string{"bash", "--noprofile", "--norc"}, bashFlags...), script, env)
}

// runShell runs script with the given shell command line (the script's path is appended) in dir.
func runShell(t *testing.T, dir string, shell []string, script string, env []string) shellRun {
	t.Helper()
	f := filepath.Join(t.TempDir(), "step.sh")
	if err := os.WriteFile(f, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	// Long enough for the GitHub Action's build from source on a fresh machine (a static build of rollguard
	// shares no compiled packages with the test's own build).
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, shell[0], append(shell[1:], f)...)
	cmd.Env, cmd.Dir = env, dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		return shellRun{code: exitErr.ExitCode(), output: out.String()}
	case err != nil:
		t.Fatalf("running a step: %v\n%s", err, out.String())
	}
	return shellRun{output: out.String()}
}

// keyValues reads KEY=VALUE lines (a $GITHUB_OUTPUT file, a dotenv report); a missing file is empty.
func keyValues(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}
	}
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// writeManifests writes manifests into a fresh folder and returns it.
func writeManifests(t *testing.T, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
