package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The GitLab component's test plays the runner: it interpolates $[[ inputs.* ]] with the inputs and the
// spec's defaults (failing on an input the spec does not declare), resolves extends, and runs a job's
// before_script and script in one POSIX sh (dash, as on alpine's busybox: no bashisms) in the project
// folder, with the job's variables, the dotenv variables of the jobs it needs, and KUBECONFIG as a
// file-type CI/CD variable.

var glInput = regexp.MustCompile(`\$\[\[\s*inputs\.([\w-]+)\s*\]\]`)

type glJob struct {
	Extends      string            `json:"extends"`
	Stage        string            `json:"stage"`
	Image        string            `json:"image"`
	Variables    map[string]string `json:"variables"`
	BeforeScript []string          `json:"before_script"`
	Script       []string          `json:"script"`
	AllowFailure any               `json:"allow_failure"`
	Needs        []struct {
		Job       string `json:"job"`
		Artifacts bool   `json:"artifacts"`
	} `json:"needs"`
	Rules     []map[string]any `json:"rules"`
	Artifacts struct {
		When    string            `json:"when"`
		Paths   []string          `json:"paths"`
		Reports map[string]string `json:"reports"`
	} `json:"artifacts"`
}

type glSpec struct {
	Spec struct {
		Inputs map[string]struct {
			Default any      `json:"default"`
			Options []string `json:"options"`
		} `json:"inputs"`
	} `json:"spec"`
}

// loadGitLabComponent interpolates the component with inputs and returns its jobs.
func loadGitLabComponent(t *testing.T, inputs map[string]string) map[string]*glJob {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "templates", "rollguard.yml"))
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := strings.Cut(string(b), "\n---\n")
	if !ok {
		t.Fatal("templates/rollguard.yml: no --- between spec and jobs")
	}
	var spec glSpec
	if err := yaml.Unmarshal([]byte(head), &spec); err != nil {
		t.Fatal(err)
	}
	for k, v := range inputs {
		in, ok := spec.Spec.Inputs[k]
		if !ok {
			t.Fatalf("input %s is not in the component's spec", k)
		}
		if len(in.Options) > 0 && !isIn(v, in.Options) {
			t.Fatalf("input %s = %q is not one of %v", k, v, in.Options)
		}
	}
	body = glInput.ReplaceAllStringFunc(body, func(m string) string {
		name := glInput.FindStringSubmatch(m)[1]
		in, ok := spec.Spec.Inputs[name]
		if !ok {
			t.Fatalf("the component uses input %s, which its spec does not declare", name)
		}
		if v, ok := inputs[name]; ok {
			return v
		}
		return fmt.Sprint(in.Default)
	})
	// GitLab refuses a variable whose value is not a string (an empty input left unquoted is null).
	var raw map[string]map[string]any
	if err := yaml.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatalf("interpolated component: %v\n%s", err, body)
	}
	for name, j := range raw {
		vars, _ := j["variables"].(map[string]any)
		for k, v := range vars {
			if _, ok := v.(string); !ok {
				t.Errorf("job %s: variable %s = %v (%T), want a string", name, k, v, v)
			}
		}
	}
	var jobs map[string]*glJob
	if err := yaml.Unmarshal([]byte(body), &jobs); err != nil {
		t.Fatalf("interpolated component: %v\n%s", err, body)
	}
	for name, j := range jobs {
		if j.Extends == "" {
			continue
		}
		base := jobs[j.Extends]
		if base == nil {
			t.Fatalf("job %s extends %s, which does not exist", name, j.Extends)
		}
		vars := map[string]string{}
		for k, v := range base.Variables {
			vars[k] = v
		}
		for k, v := range j.Variables {
			vars[k] = v
		}
		j.Variables = vars
		if j.BeforeScript == nil {
			j.BeforeScript = base.BeforeScript
		}
		if j.Image == "" {
			j.Image = base.Image
		}
	}
	return jobs
}

// glRun is one job's run.
type glRun struct {
	code   int
	log    string
	dotenv map[string]string
}

func runGitLabJob(t *testing.T, project string, j *glJob, needs map[string]string) glRun {
	t.Helper()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(project, ".home"), "CI=true", "GITLAB_CI=true",
		"CI_PROJECT_DIR=" + project, "CI_COMMIT_SHA=0123456789abcdef", "CI_PIPELINE_URL=https://gitlab.example.com/acme/web/-/pipelines/9",
		"GITLAB_USER_LOGIN=dev", "KUBECONFIG=" + cluster.Kubeconfig}
	for k, v := range needs {
		env = append(env, k+"="+v)
	}
	for k, v := range j.Variables {
		env = append(env, k+"="+v)
	}
	script := strings.Join(append(append([]string{}, j.BeforeScript...), j.Script...), "\n")
	r := runShell(t, project, []string{"sh", "-e"}, script, env)
	run := glRun{code: r.code, log: r.output, dotenv: map[string]string{}}
	if p := j.Artifacts.Reports["dotenv"]; p != "" {
		run.dotenv = keyValues(t, filepath.Join(project, p))
	}
	return run
}

func allowedExit(j *glJob, code int) bool {
	m, _ := j.AllowFailure.(map[string]any)
	codes, _ := m["exit_codes"].([]any)
	for _, c := range codes {
		if fmt.Sprint(c) == fmt.Sprint(code) {
			return true
		}
	}
	return false
}

// TestGitLabComponent: a healthy release passes with its JUnit and dotenv reports and the manual
// rollback job has nothing to do; a broken release held with on-failure hold exits 5, which the deploy
// job allows, and the manual rollback job, reading the deploy's dotenv, rolls it back and proves it healthy.
func TestGitLabComponent(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	project := t.TempDir()
	if err := os.WriteFile(filepath.Join(project, "web.yaml"), []byte(app{}.yaml()), 0o644); err != nil {
		t.Fatal(err)
	}
	inputs := map[string]string{"manifests": "web.yaml", "namespace": ns, "timeout": "2m",
		"version": "v9.9.5", "download-url": releaseServer(t, "v9.9.5", false)}
	jobs := loadGitLabComponent(t, inputs)
	deploy, rollback := jobs["rollguard-deploy"], jobs["rollguard-rollback"]
	if deploy == nil || rollback == nil {
		t.Fatalf("jobs %v; want rollguard-deploy and rollguard-rollback", jobs)
	}

	r := runGitLabJob(t, project, deploy, nil)
	if r.code != 0 || r.dotenv["ROLLGUARD_OUTCOME"] != "succeeded" || r.dotenv["ROLLGUARD_RELEASE"] != "web.v1" {
		t.Fatalf("v1: exit %d, dotenv %v; want 0, succeeded web.v1\n%s", r.code, r.dotenv, r.log)
	}
	if b, err := os.ReadFile(filepath.Join(project, deploy.Artifacts.Reports["junit"])); err != nil || !strings.Contains(string(b), "<testsuite") {
		t.Errorf("junit report %s: %v", deploy.Artifacts.Reports["junit"], err)
	}
	if rb := runGitLabJob(t, project, rollback, r.dotenv); rb.code != 0 || !strings.Contains(rb.log, "nothing to roll back") {
		t.Errorf("rollback of a healthy release: exit %d, want 0 doing nothing\n%s", rb.code, rb.log)
	}

	if err := os.WriteFile(filepath.Join(project, "web.yaml"), []byte(app{image: "registry.example.com/web:2.0.0", scenario: "crash-loop"}.yaml()), 0o644); err != nil {
		t.Fatal(err)
	}
	inputs["on-failure"] = "hold"
	jobs = loadGitLabComponent(t, inputs)
	deploy, rollback = jobs["rollguard-deploy"], jobs["rollguard-rollback"]
	r = runGitLabJob(t, project, deploy, nil)
	if r.code != 5 || !allowedExit(deploy, 5) {
		t.Fatalf("v2: exit %d (allowed: %v), want 5, allowed\n%s", r.code, allowedExit(deploy, 5), r.log)
	}
	if r.dotenv["ROLLGUARD_OUTCOME"] != "pending_approval" || r.dotenv["ROLLGUARD_REASON"] != "CrashLoop" || r.dotenv["ROLLGUARD_EXIT_CODE"] != "5" {
		t.Errorf("v2 dotenv %v, want pending_approval, CrashLoop, exit 5", r.dotenv)
	}
	rb := runGitLabJob(t, project, rollback, r.dotenv)
	if rb.code != 0 || rb.dotenv["ROLLGUARD_ROLLED_BACK"] != "true" {
		t.Fatalf("rollback: exit %d, dotenv %v; want 0, rolled back\n%s", rb.code, rb.dotenv, rb.log)
	}
	d, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != "registry.example.com/web:1.0.0" {
		t.Fatalf("after the rollback the deployment should run 1.0.0 again (%v)", err)
	}
}
