package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/rollguard/rollguard/internal/registry/registrytest"
)

// actionFile is the part of action.yml a runner reads.
type actionFile struct {
	Inputs  map[string]struct{ Default string } `json:"inputs"`
	Outputs map[string]struct{ Value string }   `json:"outputs"`
	Runs    struct {
		Using string       `json:"using"`
		Steps []actionStep `json:"steps"`
	} `json:"runs"`
}

type actionStep struct {
	ID    string            `json:"id"`
	If    string            `json:"if"`
	Uses  string            `json:"uses"`
	With  map[string]string `json:"with"`
	Shell string            `json:"shell"`
	Run   string            `json:"run"`
	Env   map[string]string `json:"env"`
}

var (
	ghExpr   = regexp.MustCompile(`\$\{\{(.*?)\}\}`)
	ghIfStep = regexp.MustCompile(`^steps\.([\w-]+)\.outputs\.([\w-]+) (==|!=) '([^']*)'$`)
)

// ghRunner runs action.yml's steps as GitHub's runner does for a composite action: step by step, each
// with the runner's variables and files ($GITHUB_OUTPUT, $GITHUB_PATH, $GITHUB_STEP_SUMMARY), stopping at
// the first failing step. actions/cache is played by its restore semantics: a hit when the cached folder
// is already there (the runner's tool cache persists across the test's runs).
type ghRunner struct {
	action    actionFile
	root      string
	actionRef string
	toolCache string // $RUNNER_TOOL_CACHE, shared by the runs of one test
	env       []string
}

// ghResult is what one use of the action produced.
type ghResult struct {
	code    int               // the failing step's exit code, 0 when every step passed
	outputs map[string]string // the action's outputs
	ran     []string          // ids of the steps that ran
	summary string            // $GITHUB_STEP_SUMMARY
	log     string
}

func newGHRunner(t *testing.T) *ghRunner {
	t.Helper()
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var a actionFile
	if err := yaml.Unmarshal(b, &a); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	if a.Runs.Using != "composite" {
		t.Fatalf("action.yml runs.using = %q, want composite", a.Runs.Using)
	}
	arch := map[string]string{"amd64": "X64", "arm64": "ARM64"}[runtime.GOARCH]
	env := []string{
		"KUBECONFIG=" + cluster.Kubeconfig, "RUNNER_OS=Linux", "RUNNER_ARCH=" + arch,
		"GITHUB_ACTIONS=true", "GITHUB_SHA=0123456789abcdef0123456789abcdef01234567", "GITHUB_ACTOR=octocat",
		"GITHUB_SERVER_URL=https://github.com", "GITHUB_REPOSITORY=acme/web", "GITHUB_RUN_ID=42",
	}
	// The build fallback uses the test's Go caches, so it compiles what go test already compiled.
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN"} {
		out, err := exec.Command("go", "env", k).Output()
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, k+"="+strings.TrimSpace(string(out)))
	}
	return &ghRunner{action: a, root: root, toolCache: t.TempDir(), env: env}
}

// use runs the action with the given inputs, like a workflow step `uses: rollguard/rollguard@REF`.
func (g *ghRunner) use(t *testing.T, inputs map[string]string) ghResult {
	t.Helper()
	for k := range inputs {
		if _, ok := g.action.Inputs[k]; !ok {
			t.Fatalf("input %q is not declared in action.yml", k)
		}
	}
	tmp := t.TempDir()
	files := map[string]string{}
	for _, f := range []string{"GITHUB_PATH", "GITHUB_ENV", "GITHUB_STEP_SUMMARY"} {
		files[f] = filepath.Join(tmp, strings.ToLower(f))
		if err := os.WriteFile(files[f], nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	steps := map[string]map[string]string{}
	lookup := func(expr string) (string, bool) {
		switch {
		case expr == "github.action_path":
			return g.root, true
		case expr == "github.action_ref":
			return g.actionRef, true
		case strings.HasPrefix(expr, "inputs."):
			name := strings.TrimPrefix(expr, "inputs.")
			in, ok := g.action.Inputs[name]
			if v, given := inputs[name]; given {
				return v, ok
			}
			return in.Default, ok
		case strings.HasPrefix(expr, "steps."):
			parts := strings.SplitN(expr, ".", 4)
			if len(parts) == 4 && parts[2] == "outputs" {
				return steps[parts[1]][parts[3]], true
			}
		}
		return "", false
	}
	res := ghResult{outputs: map[string]string{}}
	var log strings.Builder
	for i, s := range g.action.Runs.Steps {
		where := fmt.Sprintf("action.yml step %d (%s)", i, s.ID)
		if s.If != "" {
			m := ghIfStep.FindStringSubmatch(s.If)
			if m == nil {
				t.Fatalf("%s: the test cannot evaluate if: %q", where, s.If)
			}
			if (steps[m[1]][m[2]] == m[4]) != (m[3] == "==") {
				continue
			}
		}
		switch {
		case strings.HasPrefix(s.Uses, "actions/cache@"):
			path := expand(t, where, s.With["path"], ghExpr, lookup)
			entries, _ := os.ReadDir(path)
			steps[s.ID] = map[string]string{"cache-hit": fmt.Sprint(len(entries) > 0)}
			res.ran = append(res.ran, s.ID)
			continue
		case s.Uses != "":
			t.Fatalf("%s: the test does not know the action %s", where, s.Uses)
		case s.Shell != "bash":
			t.Fatalf("%s: shell %q; the test runs bash steps only", where, s.Shell)
		}
		output := filepath.Join(tmp, "output-"+s.ID)
		path := os.Getenv("PATH")
		if b, _ := os.ReadFile(files["GITHUB_PATH"]); len(b) > 0 {
			lines := strings.Fields(string(b))
			for _, p := range lines {
				path = p + ":" + path // later entries take precedence, as on the runner
			}
		}
		env := append([]string{"PATH=" + path, "HOME=" + filepath.Join(tmp, "home"), "RUNNER_TEMP=" + tmp,
			"RUNNER_TOOL_CACHE=" + g.toolCache, "GITHUB_OUTPUT=" + output}, g.env...)
		for k, f := range files {
			env = append(env, k+"="+f)
		}
		for k, v := range s.Env {
			env = append(env, k+"="+expand(t, where+" env "+k, v, ghExpr, lookup))
		}
		if ghExpr.MatchString(s.Run) {
			t.Errorf("%s: the script uses ${{ }} directly; pass values through env: (script injection)", where)
		}
		r := runBash(t, s.Run, env, "-e", "-o", "pipefail")
		fmt.Fprintf(&log, "--- step %s (exit %d)\n%s", s.ID, r.code, r.output)
		steps[s.ID] = keyValues(t, output)
		res.ran = append(res.ran, s.ID)
		if r.code != 0 {
			res.code = r.code
			break
		}
	}
	for name, o := range g.action.Outputs {
		res.outputs[name] = expand(t, "output "+name, o.Value, ghExpr, lookup)
	}
	b, _ := os.ReadFile(files["GITHUB_STEP_SUMMARY"])
	res.summary, res.log = string(b), log.String()
	return res
}

// releaseServer serves rollguard release archives as GitHub releases do, with the test's binary inside.
func releaseServer(t *testing.T, version string, tamper bool) string {
	t.Helper()
	bin, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	gz := gzip.NewWriter(&archive)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: "rollguard", Mode: 0o755, Size: int64(len(bin))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("rollguard_linux_%s.tar.gz", runtime.GOARCH)
	sum := sha256.Sum256(archive.Bytes())
	if tamper {
		sum[0] ^= 0xff
	}
	checksums := fmt.Sprintf("%s  %s\n%s  rollguard_darwin_arm64.tar.gz\n", hex.EncodeToString(sum[:]), name, strings.Repeat("0", 64))
	mux := http.NewServeMux()
	mux.HandleFunc("/releases/download/"+version+"/"+name, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(archive.Bytes()) })
	mux.HandleFunc("/releases/download/"+version+"/checksums.txt", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(checksums)) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/releases"
}

func wantOutputs(t *testing.T, res ghResult, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if res.outputs[k] != v {
			t.Errorf("output %s = %q, want %q\n%s", k, res.outputs[k], v, res.log)
		}
	}
}

// TestGitHubActionHealthyRelease: the action's own tag names the release to download (checksum verified),
// the deploy succeeds with the outputs, report, JUnit and step summary, and the next use of the action
// finds rollguard in the cache instead of installing it again.
func TestGitHubActionHealthyRelease(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	g := newGHRunner(t)
	g.actionRef = "v9.9.9"
	res := g.use(t, map[string]string{
		"manifests":    writeManifests(t, app{}.yaml()),
		"images":       "web=registry.example.com/web:1.0.1",
		"namespace":    ns,
		"timeout":      "2m",
		"download-url": releaseServer(t, "v9.9.9", false),
	})
	if res.code != 0 {
		t.Fatalf("exit %d, want 0\n%s", res.code, res.log)
	}
	if !strings.Contains(res.log, "rollguard v9.9.9 installed from") {
		t.Errorf("rollguard was not installed from the release archive:\n%s", res.log)
	}
	wantOutputs(t, res, map[string]string{"release": "web.v1", "revision": "1", "outcome": "succeeded", "reason": "", "rolled-back": "false", "exit-code": "0"})
	var rep report
	b, err := os.ReadFile(res.outputs["report"])
	if err != nil {
		t.Fatalf("report output: %v", err)
	}
	if err := json.Unmarshal(b, &rep); err != nil || rep.Outcome != "succeeded" {
		t.Errorf("report %s: outcome %q, %v", res.outputs["report"], rep.Outcome, err)
	}
	if x, err := os.ReadFile(res.outputs["junit"]); err != nil || !bytes.Contains(x, []byte("<testsuite")) {
		t.Errorf("junit output %q: %v\n%s", res.outputs["junit"], err, x)
	}
	if !strings.Contains(res.summary, "succeeded") {
		t.Errorf("step summary does not give the outcome:\n%s", res.summary)
	}
	d, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != "registry.example.com/web:1.0.1" {
		t.Fatalf("deployment not updated with the images input: %v", err)
	}

	again := g.use(t, map[string]string{"command": "install", "download-url": "http://127.0.0.1:1/unused"})
	if again.code != 0 || strings.Contains(strings.Join(again.ran, " "), "install") {
		t.Errorf("second use: exit %d, steps %v; want 0 with the install step skipped on a cache hit\n%s", again.code, again.ran, again.log)
	}
}

// TestGitHubActionBrokenRelease: from a branch (no release), the action builds rollguard from its source;
// a broken release is rolled back at once (exit 1), or held (exit 5) and rolled back by a later use of the
// action with command rollback, as examples/github/deploy-hold-approve-rollback.yml does.
func TestGitHubActionBrokenRelease(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	g := newGHRunner(t)
	g.actionRef = "main"
	manifests := writeManifests(t, app{}.yaml())
	res := g.use(t, map[string]string{"manifests": manifests, "namespace": ns, "timeout": "2m"})
	if res.code != 0 || !strings.Contains(res.log, "built from") {
		t.Fatalf("v1: exit %d, want 0 with rollguard built from source\n%s", res.code, res.log)
	}
	broken := writeManifests(t, app{image: "registry.example.com/web:2.0.0", scenario: "image-pull-failure"}.yaml())

	res = g.use(t, map[string]string{"manifests": broken, "namespace": ns, "timeout": "2m"})
	if res.code != 1 {
		t.Fatalf("v2: exit %d, want 1 (rolled back)\n%s", res.code, res.log)
	}
	wantOutputs(t, res, map[string]string{"release": "web.v2", "revision": "2", "outcome": "rolled_back", "reason": "ImagePullFailed", "rolled-back": "true", "exit-code": "1"})
	if !strings.Contains(res.log, "::error title=rollguard deploy (exit 1)::") {
		t.Errorf("no error annotation for the failed release:\n%s", res.log)
	}

	res = g.use(t, map[string]string{"manifests": broken, "namespace": ns, "timeout": "2m", "on-failure": "hold"})
	if res.code != 5 {
		t.Fatalf("v3: exit %d, want 5 (held)\n%s", res.code, res.log)
	}
	wantOutputs(t, res, map[string]string{"release": "web.v3", "outcome": "pending_approval", "reason": "ImagePullFailed", "rolled-back": "false"})

	res = g.use(t, map[string]string{"command": "rollback", "release": res.outputs["release"], "namespace": ns})
	if res.code != 0 {
		t.Fatalf("rollback: exit %d, want 0\n%s", res.code, res.log)
	}
	wantOutputs(t, res, map[string]string{"release": "web.v3", "outcome": "succeeded", "rolled-back": "true"})
	d, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != "registry.example.com/web:1.0.0" {
		t.Fatalf("after the rollback the deployment should run 1.0.0 again (%v)", err)
	}
}

// TestGitHubActionRefusesTamperedArchive: an archive that does not match the release's checksums is not
// installed, and the action fails before running anything. The version comes from the action's folder,
// named after its ref, as on runners where github.action_ref is empty in composite actions.
func TestGitHubActionRefusesTamperedArchive(t *testing.T) {
	t.Parallel()
	g := newGHRunner(t)
	g.actionRef = ""
	g.root = filepath.Join(t.TempDir(), "rollguard", "rollguard", "v9.9.8")
	if err := os.MkdirAll(g.root, 0o755); err != nil {
		t.Fatal(err)
	}
	res := g.use(t, map[string]string{"manifests": "k8s/", "download-url": releaseServer(t, "v9.9.8", true)})
	if res.code == 0 || !strings.Contains(res.log, "rollguard_linux_"+runtime.GOARCH+".tar.gz does not match checksums.txt of v9.9.8") {
		t.Fatalf("exit %d; want a failed install naming the checksum mismatch\n%s", res.code, res.log)
	}
	if got := strings.Join(res.ran, " "); strings.Contains(got, "run") {
		t.Errorf("steps %s ran; rollguard must not run after a failed install", got)
	}
}

// TestGitHubActionPromote follows examples/github/promote.yml: the action deploys to dev from
// rollguard.yaml, then promotes what runs healthy there to staging, pinned by digest.
func TestGitHubActionPromote(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	digest := registrytest.Push(t, reg.Repo(t, "web"), registrytest.Image(t, time.Now()), "1.0.0").String()
	image := reg.Host + "/web:1.0.0"
	dev, staging := cluster.Namespace(t), cluster.Namespace(t)
	p := newEnvProject(t, image, "", envYAML("dev", "sandbox", dev, "")+envYAML("staging", "sandbox", staging, ""), "dev", "staging")
	g := newGHRunner(t)
	g.actionRef = "v9.9.3"
	url := releaseServer(t, "v9.9.3", false)

	res := g.use(t, map[string]string{"environment": "dev", "config": p.config, "download-url": url})
	if res.code != 0 {
		t.Fatalf("deploy to dev: exit %d\n%s", res.code, res.log)
	}
	res = g.use(t, map[string]string{"command": "promote", "from": "dev", "environment": "staging", "config": p.config, "download-url": url})
	if res.code != 0 {
		t.Fatalf("promote dev → staging: exit %d\n%s", res.code, res.log)
	}
	wantOutputs(t, res, map[string]string{"outcome": "succeeded", "release": "web.v1", "exit-code": "0"})
	if img := deploymentImage(t, cluster.Client(), staging); img != image+"@"+digest {
		t.Errorf("staging runs %s, want %s pinned to %s", img, image, digest)
	}
}
