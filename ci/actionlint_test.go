// Package ci holds the CI templates other than the GitHub Action (azure-pipelines/: an Azure DevOps stages
// template) and the tests that lint and check every CI artifact of the repository: action.yml,
// examples/github/, ci/azure-pipelines/ and templates/ (the GitLab CI/CD component). The tests that run the
// templates' shell steps against the sandbox cluster are e2e/ci_*_test.go.
package ci

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"go.yaml.in/yaml/v3"
)

// The inputs and outputs issue #15 asks of the action; the action may have more.
var (
	actionInputs  = []string{"manifests", "images", "namespace", "environment", "config", "timeout", "on-failure", "change-cause", "version"}
	actionOutputs = []string{"release", "outcome", "reason", "rolled-back", "revision", "report"}
)

// remoteAction is how the examples name the action; the lint points them at the working tree's action.yml.
var remoteAction = regexp.MustCompile(`uses: rollguard/rollguard@\S+`)

// TestActionlint lints, with actionlint and shellcheck on every run: script, each example workflow (calling
// the working tree's action.yml, so every `with:` input and every output they read is checked against it)
// and the action's own steps (as a reusable workflow whose inputs are the action's inputs, so every
// ${{ inputs.* }} and ${{ steps.* }} they use is checked too).
func TestActionlint(t *testing.T) {
	shellcheck, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatal("shellcheck is not installed: run .ci/shellcheck.sh (apt-get install shellcheck)")
	}
	action := readFile(t, "../action.yml")
	proj := t.TempDir()
	workflows := filepath.Join(proj, ".github", "workflows")
	must(t, os.MkdirAll(workflows, 0o755))
	// actionlint resolves `uses: ./` only inside a project: a folder with .github/workflows and .git.
	must(t, os.WriteFile(filepath.Join(proj, ".git"), []byte("gitdir: none\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(proj, "action.yml"), action, 0o644))

	examples, err := filepath.Glob("../examples/github/*.yml")
	must(t, err)
	if len(examples) < 3 {
		t.Fatalf("want at least 3 example workflows in examples/github/, found %v", examples)
	}
	var files []string
	for _, ex := range examples {
		src := readFile(t, ex)
		if !remoteAction.Match(src) {
			t.Errorf("%s does not use rollguard/rollguard@REF", ex)
		}
		p := filepath.Join(workflows, filepath.Base(ex))
		must(t, os.WriteFile(p, remoteAction.ReplaceAll(src, []byte("uses: ./")), 0o644))
		files = append(files, p)
	}
	steps := filepath.Join(workflows, "action-steps.yml")
	must(t, os.WriteFile(steps, actionAsWorkflow(t, action), 0o644))
	files = append(files, steps)

	var out bytes.Buffer
	l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{Shellcheck: shellcheck, WorkingDir: proj, Oneline: true})
	must(t, err)
	errs, err := l.LintFiles(files, nil)
	must(t, err)
	for _, e := range errs {
		t.Errorf("%s:%d:%d: %s [%s]", filepath.Base(e.Filepath), e.Line, e.Column, e.Message, e.Kind)
	}
	if t.Failed() {
		t.Logf("action-steps.yml is action.yml's steps as a reusable workflow:\n%s", readFile(t, steps))
	}
}

// TestActionInterface: the action declares the inputs and outputs of issue #15, every output is set by the
// run step, and the version input defaults to the action's own ref (empty: resolved at run time).
func TestActionInterface(t *testing.T) {
	var md actionlint.ActionMetadata
	must(t, yaml.Unmarshal(readFile(t, "../action.yml"), &md))
	if md.Runs.Using != "composite" {
		t.Errorf("runs.using = %q, want composite", md.Runs.Using)
	}
	for _, in := range actionInputs {
		if md.Inputs[in] == nil {
			t.Errorf("input %q missing", in)
		}
	}
	for _, o := range actionOutputs {
		if md.Outputs[o] == nil {
			t.Errorf("output %q missing", o)
		}
	}
	var raw struct {
		Inputs  map[string]struct{ Default string }
		Outputs map[string]struct{ Value string }
	}
	must(t, yaml.Unmarshal(readFile(t, "../action.yml"), &raw))
	if d := raw.Inputs["version"].Default; d != "" {
		t.Errorf("version defaults to %q; want empty, meaning the action's own ref", d)
	}
	for name, o := range raw.Outputs {
		if want := "${{ steps.run.outputs." + name + " }}"; o.Value != want {
			t.Errorf("output %s = %q, want %q", name, o.Value, want)
		}
	}
}

// actionAsWorkflow turns a composite action into a reusable workflow with the same steps: actionlint lints
// workflows, and a composite action's steps are workflow steps.
func actionAsWorkflow(t *testing.T, action []byte) []byte {
	t.Helper()
	var a struct {
		Inputs map[string]struct {
			Default string `yaml:"default"`
		} `yaml:"inputs"`
		Outputs map[string]struct {
			Value string `yaml:"value"`
		} `yaml:"outputs"`
		Runs struct {
			Steps []yaml.Node `yaml:"steps"`
		} `yaml:"runs"`
	}
	must(t, yaml.Unmarshal(action, &a))
	inputs := map[string]any{}
	for name, in := range a.Inputs {
		inputs[name] = map[string]any{"type": "string", "required": false, "default": in.Default}
	}
	outputs := map[string]string{}
	for name, o := range a.Outputs {
		outputs[name] = o.Value
	}
	names := make([]string, 0, len(outputs))
	for n := range outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	wf := map[string]any{
		"name": "action steps",
		"on":   map[string]any{"workflow_call": map[string]any{"inputs": inputs}},
		"jobs": map[string]any{"action": map[string]any{
			"runs-on": "ubuntu-latest",
			"outputs": outputs,
			"steps":   a.Runs.Steps,
		}},
	}
	b, err := yaml.Marshal(wf)
	must(t, err)
	if len(a.Runs.Steps) == 0 || !strings.Contains(string(b), "run:") {
		t.Fatalf("action.yml has no run steps:\n%s", b)
	}
	return b
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return b
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
