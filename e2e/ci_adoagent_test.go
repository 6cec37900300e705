package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The Azure DevOps template's test plays the agent: it expands the template with parameters as Azure
// DevOps does at compile time, then runs the stages in order, evaluating each stage's condition and each
// step's, running bash and AzureCLI@2 scripts with bash, answering the ManualValidation as the test says,
// and reading the logging commands (##vso[...]) the scripts print. az and kubelogin are cloud CLIs that
// cannot run here: they are stubbed by shell scripts on PATH (adoStubs) that check the arguments the
// template passes and write the sandbox's kubeconfig where `az aks get-credentials --file` asks.

var (
	adoTemplateExpr = regexp.MustCompile(`\$\{\{(.*?)\}\}`)
	adoWholeExpr    = regexp.MustCompile(`^\s*\$\{\{(.*)\}\}\s*$`)
	adoRuntimeExpr  = regexp.MustCompile(`^\s*\$\[(.*)\]\s*$`)
	adoMacro        = regexp.MustCompile(`\$\(([A-Za-z0-9_.]+)\)`)
	adoCommand      = regexp.MustCompile(`^##vso\[([a-z.]+)([^\]]*)\](.*)$`)
)

// adoParameters are the original pipeline's parameters for the test's AKS cluster (the sandbox).
func adoParameters(ns string) map[string]any {
	return map[string]any{
		"environment": "prod-eu", "azureServiceConnection": "arm-prod", "aksName": "aks-prod",
		"aksRg": "rg-prod", "aksSubscription": "sub-1234", "namespace": ns, "deploymentName": "web",
	}
}

// loadADOTemplate reads a template file and expands its template expressions with the given parameters
// (and the parameters' defaults), splicing steps templates in.
func loadADOTemplate(t *testing.T, path string, given map[string]any) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	params := map[string]any{}
	declared := map[string]bool{}
	list, _ := doc["parameters"].([]any)
	for _, p := range list {
		p := p.(map[string]any)
		name := p["name"].(string)
		declared[name] = true
		v, ok := given[name]
		if !ok {
			if v, ok = p["default"]; !ok {
				t.Fatalf("%s: parameter %s has no default and the test gives none", path, name)
			}
		}
		if values, ok := p["values"].([]any); ok && !contains(values, v) {
			t.Fatalf("%s: parameter %s = %v is not one of %v", path, name, v, values)
		}
		params[name] = v
	}
	for name := range given {
		if !declared[name] {
			t.Fatalf("%s: the test gives parameter %s, which the template does not declare", path, name)
		}
	}
	eval := func(expr string) any {
		v, err := evalADO(expr, func(p []string) (adoValue, error) {
			if len(p) == 2 && p[0] == "parameters" {
				if v, ok := params[p[1]]; ok {
					return v, nil
				}
			}
			return nil, fmt.Errorf("unknown %s", strings.Join(p, "."))
		}, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return v
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case string:
			if m := adoWholeExpr.FindStringSubmatch(v); m != nil && !strings.Contains(m[1], "}}") {
				return eval(m[1])
			}
			return adoTemplateExpr.ReplaceAllStringFunc(v, func(s string) string {
				return fmt.Sprint(eval(adoTemplateExpr.FindStringSubmatch(s)[1]))
			})
		case []any:
			out := []any{}
			for _, e := range v {
				if m, ok := e.(map[string]any); ok && m["template"] != nil {
					sub, _ := m["parameters"].(map[string]any)
					given, _ := walk(sub).(map[string]any)
					inner := loadADOTemplate(t, filepath.Join(filepath.Dir(path), m["template"].(string)), given)
					out = append(out, inner["steps"].([]any)...)
					continue
				}
				out = append(out, walk(e))
			}
			return out
		case map[string]any:
			out := map[string]any{}
			for k, e := range v {
				if strings.Contains(k, "${{") {
					t.Fatalf("%s: the test does not expand template expressions in keys (%s)", path, k)
				}
				out[k] = walk(e)
			}
			return out
		}
		return v
	}
	delete(doc, "parameters")
	if doc == nil {
		doc = map[string]any{}
	}
	return walk(doc).(map[string]any)
}

func contains(list []any, v any) bool {
	for _, e := range list {
		if fmt.Sprint(e) == fmt.Sprint(v) {
			return true
		}
	}
	return false
}

// adoJob is what one job did.
type adoJob struct {
	result       string            // Succeeded, SucceededWithIssues, Failed, Skipped
	outputs      map[string]string // "step.VAR"
	log          string
	published    map[string]string // PublishTestResults files found: path → content
	instructions string            // a ManualValidation's text
}

type adoStage struct {
	result string
	jobs   map[string]*adoJob
}

// adoAgent runs an expanded stages template.
type adoAgent struct {
	params   map[string]any
	approve  bool // the answer to ManualValidation: resume (true) or reject
	temp     string
	tools    string
	stubs    string
	stubLog  string
	releases string // download URL of the release server
}

func newADOAgent(t *testing.T, params map[string]any) *adoAgent {
	t.Helper()
	a := &adoAgent{params: params, temp: t.TempDir(), tools: t.TempDir(), stubs: t.TempDir()}
	a.stubLog = filepath.Join(a.stubs, "calls.log")
	adoStubs(t, a.stubs)
	return a
}

func (a *adoAgent) run(t *testing.T, tree map[string]any) map[string]*adoStage {
	t.Helper()
	stages := map[string]*adoStage{}
	var previous string
	for _, s := range tree["stages"].([]any) {
		s := s.(map[string]any)
		name := s["stage"].(string)
		var deps []string
		switch d := s["dependsOn"].(type) {
		case nil:
			if previous != "" {
				deps = []string{previous}
			}
		case string:
			deps = []string{d}
		case []any:
			for _, e := range d {
				deps = append(deps, e.(string))
			}
		}
		previous = name
		st := &adoStage{jobs: map[string]*adoJob{}}
		stages[name] = st
		cond, _ := s["condition"].(string)
		if cond == "" {
			cond = "succeeded()"
		}
		ok, err := evalADO(cond, func(p []string) (adoValue, error) {
			if len(p) >= 3 && p[0] == "dependencies" && isIn(p[1], deps) {
				dep := stages[p[1]]
				switch {
				case len(p) == 3 && p[2] == "result":
					return dep.result, nil
				case len(p) == 4 && p[2] == "outputs":
					job, rest, _ := strings.Cut(p[3], ".")
					if j := dep.jobs[job]; j != nil {
						return j.outputs[rest], nil
					}
					return "", nil
				}
			}
			return nil, fmt.Errorf("stage %s cannot read %s (not a dependency?)", name, strings.Join(p, "."))
		}, func(fn string) (bool, error) {
			return depsStatus(fn, deps, stages), nil
		})
		if err != nil {
			t.Fatalf("stage %s condition: %v", name, err)
		}
		if ok != true {
			st.result = "Skipped"
			continue
		}
		st.result = "Succeeded"
		for _, j := range s["jobs"].([]any) {
			j := j.(map[string]any)
			job := a.runJob(t, name, j, stages)
			st.jobs[j["job"].(string)] = job
			st.result = worse(st.result, job.result)
		}
	}
	return stages
}

func isIn(s string, list []string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func depsStatus(fn string, deps []string, stages map[string]*adoStage) bool {
	switch fn {
	case "succeeded":
		for _, d := range deps {
			if r := stages[d].result; r != "Succeeded" && r != "SucceededWithIssues" {
				return false
			}
		}
		return true
	case "failed":
		for _, d := range deps {
			if stages[d].result == "Failed" {
				return true
			}
		}
	case "succeededorfailed":
		return true
	}
	return false
}

func worse(a, b string) string {
	rank := map[string]int{"Succeeded": 0, "SucceededWithIssues": 1, "Failed": 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func (a *adoAgent) runJob(t *testing.T, stage string, j map[string]any, stages map[string]*adoStage) *adoJob {
	t.Helper()
	job := &adoJob{result: "Succeeded", outputs: map[string]string{}, published: map[string]string{}}
	vars := map[string]string{"Agent.TempDirectory": a.temp, "Build.BuildId": "77", "Build.RequestedForEmail": "dev@example.com"}
	jv, _ := j["variables"].(map[string]any)
	for k, v := range jv {
		s := fmt.Sprint(v)
		if m := adoRuntimeExpr.FindStringSubmatch(s); m != nil {
			val, err := evalADO(m[1], func(p []string) (adoValue, error) {
				if len(p) == 5 && p[0] == "stageDependencies" && p[3] == "outputs" {
					if st := stages[p[1]]; st != nil && st.jobs[p[2]] != nil {
						return st.jobs[p[2]].outputs[p[4]], nil
					}
					return "", nil
				}
				return nil, fmt.Errorf("unknown %s", strings.Join(p, "."))
			}, nil)
			if err != nil {
				t.Fatalf("stage %s variable %s: %v", stage, k, err)
			}
			s = fmt.Sprint(val)
		}
		vars[k] = s
	}
	macro := func(where, s string) string {
		return adoMacro.ReplaceAllStringFunc(s, func(m string) string {
			name := adoMacro.FindStringSubmatch(m)[1]
			v, ok := vars[name]
			if !ok {
				t.Fatalf("%s: unknown variable $(%s)", where, name)
			}
			return v
		})
	}
	steps, _ := j["steps"].([]any)
	if pool, _ := j["pool"].(string); pool == "server" {
		for _, s := range steps {
			s := s.(map[string]any)
			if s["task"] != "ManualValidation@1" {
				t.Fatalf("stage %s: server job step %v; the test plays ManualValidation@1 only", stage, s)
			}
			in := s["inputs"].(map[string]any)
			job.instructions = macro(stage+" instructions", fmt.Sprint(in["instructions"]))
			if notify := macro(stage+" notifyUsers", fmt.Sprint(in["notifyUsers"])); notify == "" {
				t.Errorf("stage %s: ManualValidation@1 needs notifyUsers", stage)
			}
			if !a.approve {
				job.result = "Failed"
			}
		}
		return job
	}
	path := a.stubs + ":" + os.Getenv("PATH")
	var log strings.Builder
	for i, s := range steps {
		s := s.(map[string]any)
		where := fmt.Sprintf("stage %s step %d", stage, i)
		cond, _ := s["condition"].(string)
		if cond == "" {
			cond = "succeeded()"
		}
		run, err := evalADO(cond, func(p []string) (adoValue, error) {
			return nil, fmt.Errorf("unknown %s", strings.Join(p, "."))
		}, func(fn string) (bool, error) {
			failed := job.result == "Failed"
			return (fn == "succeeded" && !failed) || (fn == "failed" && failed) || fn == "succeededorfailed", nil
		})
		if err != nil {
			t.Fatalf("%s condition: %v", where, err)
		}
		if run != true {
			continue
		}
		var script string
		switch {
		case s["checkout"] != nil:
			continue
		case s["bash"] != nil:
			script = s["bash"].(string)
		case s["task"] == "AzureCLI@2":
			in := s["inputs"].(map[string]any)
			if in["scriptType"] != "bash" || in["scriptLocation"] != "inlineScript" {
				t.Fatalf("%s: AzureCLI@2 must run an inline bash script", where)
			}
			if in["azureSubscription"] != a.params["azureServiceConnection"] {
				t.Errorf("%s: azureSubscription = %v, want the azureServiceConnection parameter", where, in["azureSubscription"])
			}
			script = in["inlineScript"].(string)
		case s["task"] == "PublishTestResults@2":
			in := s["inputs"].(map[string]any)
			if in["testResultsFormat"] != "JUnit" {
				t.Errorf("%s: testResultsFormat %v, want JUnit", where, in["testResultsFormat"])
			}
			f := macro(where, fmt.Sprint(in["testResultsFiles"]))
			if b, err := os.ReadFile(f); err == nil {
				job.published[f] = string(b)
			}
			continue
		default:
			t.Fatalf("%s: the test does not know the step %v", where, s)
		}
		env := []string{"PATH=" + path, "HOME=" + filepath.Join(a.temp, "home"), "AGENT_TEMPDIRECTORY=" + a.temp,
			"AGENT_TOOLSDIRECTORY=" + a.tools, "TF_BUILD=True", "BUILD_BUILDID=77",
			"SYSTEM_COLLECTIONURI=https://dev.azure.com/acme/", "SYSTEM_TEAMPROJECT=shop",
			"STUB_LOG=" + a.stubLog, "STUB_KUBECONFIG=" + cluster.Kubeconfig,
			fmt.Sprintf("STUB_AKS=%s/%s/%s", a.params["aksRg"], a.params["aksName"], a.params["aksSubscription"])}
		se, _ := s["env"].(map[string]any)
		for k, v := range se {
			env = append(env, k+"="+macro(where+" env "+k, fmt.Sprint(v)))
		}
		r := runBash(t, script, env)
		fmt.Fprintf(&log, "--- %s (exit %d)\n%s", where, r.code, r.output)
		result := "Succeeded"
		if r.code != 0 {
			result = "Failed"
		}
		for _, line := range strings.Split(r.output, "\n") {
			m := adoCommand.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			switch m[1] {
			case "task.setvariable":
				props := adoProps(m[2])
				if props["isOutput"] == "true" {
					step, _ := s["name"].(string)
					job.outputs[step+"."+props["variable"]] = m[3]
				}
			case "task.prependpath":
				path = m[3] + ":" + path
			case "task.complete":
				if adoProps(m[2])["result"] == "SucceededWithIssues" && result == "Succeeded" {
					result = "SucceededWithIssues"
				}
			}
		}
		job.result = worse(job.result, result)
	}
	job.log = log.String()
	return job
}

// adoProps parses a logging command's properties: " variable=X;isOutput=true".
func adoProps(s string) map[string]string {
	props := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSpace(s), ";") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			props[k] = v
		}
	}
	return props
}

// runADO expands the template with params and runs it.
func (a *adoAgent) runADO(t *testing.T, params map[string]any) map[string]*adoStage {
	t.Helper()
	a.params = params
	tree := loadADOTemplate(t, filepath.Join(repoRoot(t), "ci", "azure-pipelines", "rollguard.yml"), params)
	stages := a.run(t, tree)
	if _, err := os.Stat(filepath.Join(a.temp, "rollguard-kubeconfig")); !os.IsNotExist(err) {
		t.Errorf("the kubeconfig is still on the agent after the pipeline (%v)", err)
	}
	return stages
}

func adoLog(stages map[string]*adoStage) string {
	var b strings.Builder
	for name, s := range stages {
		fmt.Fprintf(&b, "== stage %s: %s\n", name, s.result)
		for jn, j := range s.jobs {
			fmt.Fprintf(&b, "-- job %s: %s %v\n%s", jn, j.result, j.outputs, j.log)
		}
	}
	return b.String()
}

func wantStages(t *testing.T, stages map[string]*adoStage, want map[string]string) {
	t.Helper()
	for name, w := range want {
		if s := stages[name]; s == nil || s.result != w {
			t.Errorf("stage %s: %v, want %s", name, s, w)
		}
	}
	if t.Failed() {
		t.Fatalf("pipeline:\n%s", adoLog(stages))
	}
}
