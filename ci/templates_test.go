package ci

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The original pipeline's parameters (issue #15), which the Azure template keeps with their defaults
// (nil: required), and the ones it adds.
var azureParams = map[string]any{
	"environment": nil, "azureServiceConnection": nil, "aksName": nil, "aksRg": nil, "aksSubscription": nil,
	"namespace": nil, "deploymentName": nil, "timeout": "1m", "dependsOn": []any{},
	"manifests": []any{}, "images": []any{}, "onFailure": "hold",
}

// azureConditions is every stage's condition; "" is the default (succeeded dependencies).
var azureConditions = map[string]string{
	"rollguard_deploy_ENV":   "",
	"rollguard_approval_ENV": "and(succeeded(), eq(dependencies.rollguard_deploy_ENV.outputs['rollguard.rollguard.ROLLGUARD_HELD'], 'true'))",
	"rollguard_rollback_ENV": "and(succeeded(), eq(dependencies.rollguard_deploy_ENV.outputs['rollguard.rollguard.ROLLGUARD_HELD'], 'true'))",
	"rollguard_cleanup_ENV":  "always()",
}

const envExpr = "${{ replace(parameters.environment, '-', '_') }}"

type azureTemplate struct {
	Parameters []struct {
		Name    string `json:"name"`
		Type    string `json:"type"`
		Default any    `json:"default"`
	} `json:"parameters"`
	Stages []struct {
		Stage     string `json:"stage"`
		DependsOn any    `json:"dependsOn"`
		Condition string `json:"condition"`
		Jobs      []struct {
			Job              string `json:"job"`
			Pool             any    `json:"pool"`
			TimeoutInMinutes int    `json:"timeoutInMinutes"`
			Steps            []map[string]any
		} `json:"jobs"`
	} `json:"stages"`
}

func TestAzureTemplateStructure(t *testing.T) {
	var tpl azureTemplate
	must(t, yaml.Unmarshal(readFile(t, "azure-pipelines/rollguard.yml"), &tpl))
	got := map[string]any{}
	for _, p := range tpl.Parameters {
		got[p.Name] = p.Default
	}
	for name, def := range azureParams {
		d, ok := got[name]
		switch {
		case !ok:
			t.Errorf("parameter %s missing", name)
		case fmt.Sprint(d) != fmt.Sprint(def):
			t.Errorf("parameter %s defaults to %v, want %v", name, d, def)
		}
	}
	var names []string
	for _, s := range tpl.Stages {
		name := strings.ReplaceAll(s.Stage, envExpr, "ENV")
		names = append(names, name)
		want, ok := azureConditions[name]
		if !ok {
			t.Errorf("unexpected stage %s", s.Stage)
			continue
		}
		if cond := strings.ReplaceAll(s.Condition, envExpr, "ENV"); cond != want {
			t.Errorf("stage %s condition:\n got %s\nwant %s", name, cond, want)
		}
		for _, j := range s.Jobs {
			checkAzureJob(t, name, j.Job, j.Pool, j.TimeoutInMinutes, j.Steps)
		}
	}
	if want := "rollguard_deploy_ENV rollguard_approval_ENV rollguard_rollback_ENV rollguard_cleanup_ENV"; strings.Join(names, " ") != want {
		t.Errorf("stages %v, want %s", names, want)
	}
	if d := fmt.Sprint(tpl.Stages[0].DependsOn); d != "${{ parameters.dependsOn }}" {
		t.Errorf("the deploy stage depends on %s, want the dependsOn parameter", d)
	}
}

// checkAzureJob: the approval is a ManualValidation on a server job waiting up to a day; every job that
// gets credentials runs rollguard in the same AzureCLI step (kubelogin's azurecli login lives only there),
// removes the kubeconfig and publishes the JUnit report even when it failed.
func checkAzureJob(t *testing.T, stage, job string, pool any, timeout int, steps []map[string]any) {
	t.Helper()
	if stage == "rollguard_approval_ENV" {
		if pool != "server" || timeout != 1440 || len(steps) != 1 || steps[0]["task"] != "ManualValidation@1" {
			t.Errorf("%s/%s: want one ManualValidation@1 on pool server with timeoutInMinutes 1440", stage, job)
		}
		return
	}
	var creds, removes, publishes bool
	for _, s := range steps {
		inputs, _ := s["inputs"].(map[string]any)
		script := fmt.Sprint(s["bash"], inputs["inlineScript"])
		if strings.Contains(script, "az aks get-credentials") {
			creds = true
			if s["task"] != "AzureCLI@2" || !strings.Contains(script, "kubelogin convert-kubeconfig -l azurecli") || !strings.Contains(script, "rollguard \"$") {
				t.Errorf("%s/%s: credentials must be got, converted with kubelogin and used by rollguard in one AzureCLI@2 step", stage, job)
			}
		}
		if strings.Contains(script, "rm -f \"$AGENT_TEMPDIRECTORY/rollguard-kubeconfig\"") && s["condition"] == "always()" {
			removes = true
		}
		if s["task"] == "PublishTestResults@2" && s["condition"] == "always()" && inputs["testResultsFormat"] == "JUnit" {
			publishes = true
		}
	}
	if creds && (!removes || !publishes) {
		t.Errorf("%s/%s: gets credentials but does not always remove the kubeconfig (%v) and publish JUnit (%v)", stage, job, removes, publishes)
	}
	if stage == "rollguard_cleanup_ENV" && !removes {
		t.Errorf("%s: the clean-up stage does not remove the kubeconfig", stage)
	}
}

func TestGitLabComponentStructure(t *testing.T) {
	head, body, ok := strings.Cut(string(readFile(t, "../templates/rollguard.yml")), "\n---\n")
	if !ok {
		t.Fatal("templates/rollguard.yml: a component is a spec header, ---, then jobs")
	}
	var spec struct {
		Spec struct {
			Inputs map[string]struct {
				Default any      `json:"default"`
				Options []string `json:"options"`
			} `json:"inputs"`
		} `json:"spec"`
	}
	must(t, yaml.Unmarshal([]byte(head), &spec))
	for _, in := range []string{"stage", "manifests", "images", "namespace", "environment", "timeout", "on-failure", "change-cause", "version"} {
		if _, ok := spec.Spec.Inputs[in]; !ok {
			t.Errorf("spec.inputs.%s missing", in)
		}
	}
	var jobs map[string]struct {
		Stage        string         `json:"stage"`
		Script       []string       `json:"script"`
		AllowFailure map[string]any `json:"allow_failure"`
		Rules        []map[string]any
		Needs        []map[string]any
		Artifacts    struct {
			When    string            `json:"when"`
			Reports map[string]string `json:"reports"`
		} `json:"artifacts"`
	}
	must(t, yaml.Unmarshal([]byte(body), &jobs))
	deploy, rollback := jobs["$[[ inputs.job-prefix ]]-deploy"], jobs["$[[ inputs.job-prefix ]]-rollback"]
	if deploy.Artifacts.When != "always" || deploy.Artifacts.Reports["junit"] == "" || deploy.Artifacts.Reports["dotenv"] == "" {
		t.Errorf("deploy artifacts %+v: want junit and dotenv reports kept when it fails", deploy.Artifacts)
	}
	if fmt.Sprint(deploy.AllowFailure["exit_codes"]) != "[5]" {
		t.Errorf("deploy allow_failure %v: want exit_codes [5] (held)", deploy.AllowFailure)
	}
	if len(rollback.Rules) != 1 || rollback.Rules[0]["when"] != "manual" || len(rollback.Needs) != 1 {
		t.Errorf("rollback: rules %v needs %v; want a manual job that needs the deploy", rollback.Rules, rollback.Needs)
	}
	if rollback.Artifacts.When != "always" || rollback.Artifacts.Reports["junit"] == "" {
		t.Errorf("rollback artifacts %+v: want a junit report", rollback.Artifacts)
	}
}

// TestKrewManifest renders the krew-release-bot template as the bot does and checks the plugin manifest:
// the plugin is named rollguard (kubectl rollguard), every platform ships the rollguard binary from the
// release archive the other templates download.
func TestKrewManifest(t *testing.T) {
	src := string(readFile(t, "../examples/krew/rollguard.yaml"))
	sha := strings.Repeat("ab", 32)
	var lines []string
	for _, l := range strings.Split(src, "\n") {
		if i := strings.Index(l, `{{ addURIAndSha "`); i >= 0 {
			uri := strings.TrimSuffix(l[i+len(`{{ addURIAndSha "`):], `" .TagName }}`)
			lines = append(lines, l[:i]+"uri: "+uri, l[:i]+"sha256: "+sha)
			continue
		}
		lines = append(lines, l)
	}
	rendered := strings.ReplaceAll(strings.Join(lines, "\n"), "{{ .TagName }}", "v1.2.3")
	var m struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct{ Name string }
		Spec       struct {
			Version          string `json:"version"`
			Homepage         string `json:"homepage"`
			ShortDescription string `json:"shortDescription"`
			Description      string `json:"description"`
			Platforms        []struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
				URI    string `json:"uri"`
				Sha256 string `json:"sha256"`
				Bin    string `json:"bin"`
			} `json:"platforms"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict([]byte(rendered), &m); err != nil {
		t.Fatalf("rendered manifest: %v\n%s", err, rendered)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "rollguard" {
		t.Errorf("header %s %s %s", m.APIVersion, m.Kind, m.Metadata.Name)
	}
	if m.Spec.Version != "v1.2.3" || m.Spec.ShortDescription == "" || len(m.Spec.ShortDescription) > 64 {
		t.Errorf("version %q, shortDescription %q (krew wants one under 64 characters)", m.Spec.Version, m.Spec.ShortDescription)
	}
	if len(m.Spec.Platforms) != 4 {
		t.Errorf("%d platforms, want linux and darwin on amd64 and arm64", len(m.Spec.Platforms))
	}
	for _, p := range m.Spec.Platforms {
		l := p.Selector.MatchLabels
		want := fmt.Sprintf("https://github.com/rollguard/rollguard/releases/download/v1.2.3/rollguard_%s_%s.tar.gz", l["os"], l["arch"])
		if p.URI != want || p.Bin != "rollguard" || p.Sha256 != sha {
			t.Errorf("platform %v: uri %s bin %s; want %s with bin rollguard", l, p.URI, p.Bin, want)
		}
	}
}

// TestDistLayout runs `make dist` for this machine's platform and checks the layout every installer
// (action.yml, the Azure and GitLab templates, the krew manifest) downloads: rollguard_OS_ARCH.tar.gz
// holding rollguard, listed in checksums.txt in sha256sum's format.
func TestDistLayout(t *testing.T) {
	plat := "linux/" + runtime.GOARCH
	dist := filepath.Join(t.TempDir(), "dist")
	cmd := exec.Command("make", "-C", "..", "--no-print-directory", "dist", "DIST_PLATFORMS="+plat, "DIST_DIR="+dist, "VERSION=v0.0.0-dist")
	cmd.Env = append(os.Environ(), "MAKEFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make dist: %v\n%s", err, out)
	}
	archive := "rollguard_linux_" + runtime.GOARCH + ".tar.gz"
	sums := string(readFile(t, filepath.Join(dist, "checksums.txt")))
	if !strings.HasSuffix(strings.TrimSpace(sums), "  "+archive) {
		t.Errorf("checksums.txt does not list %s:\n%s", archive, sums)
	}
	check := exec.Command("sha256sum", "-c", "checksums.txt")
	check.Dir = dist
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}
	tmp := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", filepath.Join(dist, archive), "-C", tmp, "rollguard").CombinedOutput(); err != nil {
		t.Fatalf("%s has no rollguard: %v\n%s", archive, err, out)
	}
	v, err := exec.Command(filepath.Join(tmp, "rollguard"), "version").Output()
	if err != nil || !strings.HasPrefix(string(v), "rollguard v0.0.0-dist") {
		t.Errorf("the archive's rollguard version: %q %v", v, err)
	}
}
