package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/internal/registry/ecrtest"
	"github.com/rollguard/rollguard/internal/registry/registrytest"
)

// TestRollbackToPreviousImage: against a real registry (docker-registry) whose tags were pushed out of version
// order (a hotfix 1.0.1 built after 1.1.0), `rollback --to-previous-image` deploys the tag pushed before the
// running one, pinned by digest, as a tracked release recorded in the history; `--prefix` narrows the tags;
// and `deploy --image web=previous` makes the same choice for a deploy from manifests.
func TestRollbackToPreviousImage(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	repo := reg.Repo(t, "web")
	base := time.Now().Add(-time.Hour)
	digests := map[string]string{}
	for i, tag := range []string{"1.0.0", "1.1.0", "1.0.1", "1.2.0"} {
		digests[tag] = registrytest.Push(t, repo, registrytest.Image(t, base.Add(time.Duration(i)*time.Minute)), tag).String()
	}
	img := func(tag string) string { return reg.Host + "/web:" + tag }
	pinned := func(tag string) string { return img(tag) + "@" + digests[tag] }
	ns := cluster.Namespace(t)
	manifest := writeFile(t, "web.yaml", app{image: img("1.2.0")}.yaml())

	mustCode(t, rollguard(t, "", "deploy", "-f", manifest, "-n", ns, "--timeout", "3m"), 0, "deploy 1.2.0")
	r := rollguard(t, "", "rollback", "--to-previous-image", "deployment/web", "-n", ns, "--timeout", "3m", "-o", "json")
	mustCode(t, r, 0, "rollback --to-previous-image")
	if got := deploymentImage(t, cluster.Client(), ns); got != pinned("1.0.1") {
		t.Fatalf("after rollback --to-previous-image: image %s, want the hotfix pushed before 1.2.0, %s", got, pinned("1.0.1"))
	}
	if rep := parseReport(t, r); rep.Outcome != "succeeded" || !strings.Contains(r.stdout, `"web.v2"`) || len(rep.Workloads) != 1 || rep.Workloads[0].Status != "healthy" {
		t.Errorf("report: %+v", rep)
	}

	r = rollguard(t, "", "rollback", "--to-previous-image", "--app", "web", "--prefix", "1.0.", "-n", ns, "--timeout", "3m")
	mustCode(t, r, 0, "rollback --to-previous-image --app web --prefix 1.0.")
	if got := deploymentImage(t, cluster.Client(), ns); got != pinned("1.0.0") {
		t.Fatalf("with --prefix 1.0.: image %s, want %s (1.1.0 does not match the prefix)", got, pinned("1.0.0"))
	}

	mustCode(t, rollguard(t, "", "deploy", "-f", manifest, "-n", ns, "--timeout", "3m", "--image", "web="+img("1.2.0")), 0, "deploy 1.2.0 again")
	mustCode(t, rollguard(t, "", "deploy", "-f", manifest, "-n", ns, "--timeout", "3m", "--image", "web=previous"), 0, "deploy --image web=previous")
	if got := deploymentImage(t, cluster.Client(), ns); got != pinned("1.0.1") {
		t.Fatalf("after deploy --image web=previous: image %s, want %s", got, pinned("1.0.1"))
	}

	h := rollguard(t, "", "history", "deployment/web", "-n", ns, "-o", "json")
	mustCode(t, h, 0, "history")
	var hist struct {
		Entries []historyEntry `json:"entries"`
	}
	if err := json.Unmarshal([]byte(h.stdout), &hist); err != nil {
		t.Fatalf("history -o json: %v\n%s", err, h.stdout)
	}
	byRelease := map[string]historyEntry{}
	for _, e := range hist.Entries {
		byRelease[e.Release] = e
	}
	for id, want := range map[string]string{"web.v2": pinned("1.0.1"), "web.v3": pinned("1.0.0"), "web.v5": pinned("1.0.1")} {
		e := byRelease[id]
		if e.Outcome != "succeeded" || !slices.Contains(e.Images, want) {
			t.Errorf("history %s: %+v, want succeeded with %s\n%s", id, e, want, h.stdout)
		}
	}
	if e := byRelease["web.v2"]; !strings.Contains(e.ChangeCause, "--to-previous-image") || !strings.Contains(e.ChangeCause, img("1.2.0")) {
		t.Errorf("web.v2 change cause %q does not say what was rolled back from and how", e.ChangeCause)
	}

	// The oldest image has no previous one: exit 3 and nothing changes.
	mustCode(t, rollguard(t, "", "deploy", "-f", manifest, "-n", ns, "--timeout", "3m", "--image", "web="+img("1.0.0")), 0, "deploy 1.0.0")
	r = rollguard(t, "", "rollback", "--to-previous-image", "deployment/web", "-n", ns)
	if r.code != 3 || !strings.Contains(r.stderr, "no previous image") {
		t.Errorf("previous of the oldest image: exit %d, %s", r.code, r.stderr)
	}
	if got := deploymentImage(t, cluster.Client(), ns); got != img("1.0.0") {
		t.Errorf("a refused rollback changed the image to %s", got)
	}
}

// TestECRPruneKeepsWhatTheClusterRuns: on the ECR path (the ECR protocol test double standing in for AWS),
// images the cluster runs or keeps in a ReplicaSet for rollback are protected, untagged images are expired as
// ECR does, and refused AWS credentials exit 4 with nothing deleted.
func TestECRPruneKeepsWhatTheClusterRuns(t *testing.T) {
	t.Parallel()
	ecr := ecrtest.Start(t)
	ecr.CreateRepository("web")
	now := time.Now()
	for i, tag := range []string{"1.0.0", "", "1.0.1", "", "1.0.2", "1.0.3"} {
		var tags []string
		if tag != "" {
			tags = []string{tag}
		}
		ecr.Push("web", now.Add(time.Duration(i-10)*time.Hour), tags...)
	}
	repo := ecr.Host() + "/web"
	ns := cluster.Namespace(t)
	manifest := writeFile(t, "web.yaml", app{image: repo + ":1.0.1"}.yaml())
	mustCode(t, rollguard(t, "", "deploy", "-f", manifest, "-n", ns, "--timeout", "3m"), 0, "deploy 1.0.1")
	mustCode(t, rollguard(t, "", "deploy", "-f", manifest, "-n", ns, "--timeout", "3m", "--image", "web="+repo+":1.0.2"), 0, "deploy 1.0.2")

	policy := filepath.Join(t.TempDir(), "policy.json")
	keepNewest := `{"rules":[{"rulePriority":1,"description":"keep the newest image","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}`
	if err := os.WriteFile(policy, []byte(keepNewest), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append([]string{"KUBECONFIG=" + cluster.Kubeconfig}, ecr.EnvList(t.TempDir())...)
	refused := append(slices.Clone(env), "AWS_ACCESS_KEY_ID=AKIDREFUSED")
	r := rollguardEnv(t, refused, "", "images", "prune", "--repository", repo, "--policy", policy, "-n", ns)
	if r.code != 4 || !strings.Contains(r.stderr, "AWS refused our credentials") || len(ecr.Images("web")) != 6 {
		t.Fatalf("refused credentials: exit %d, %d images left\n%s", r.code, len(ecr.Images("web")), r.stderr)
	}

	r = rollguardEnv(t, env, "", "images", "prune", "--repository", repo, "--policy", policy, "-n", ns, "-o", "json")
	mustCode(t, r, 0, "images prune on ECR")
	var left []string
	untagged := 0
	for _, i := range ecr.Images("web") {
		left = append(left, i.Tags...)
		if len(i.Tags) == 0 {
			untagged++
		}
	}
	slices.Sort(left)
	if want := []string{"1.0.1", "1.0.2", "1.0.3"}; !slices.Equal(left, want) || untagged != 0 {
		t.Errorf("left %v and %d untagged, want %v (running, rollback ReplicaSet, newest) and no untagged\n%s", left, untagged, want, r.stdout)
	}
	if !strings.Contains(r.stdout, "a rollout undo target") || !strings.Contains(r.stdout, "running in pod") {
		t.Errorf("the report does not say why 1.0.1 and 1.0.2 were kept:\n%s", r.stdout)
	}
}

// TestImagesPrevious: `rollguard images previous REG/REPO` names the tag pushed before the newest one (by push
// time, not version order), for pipelines that roll back by tag; --prefix narrows the tags; -o json pins
// the tag to its digest.
func TestImagesPrevious(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	repo := reg.Repo(t, "api")
	base := time.Now().Add(-time.Hour)
	digests := map[string]string{}
	for i, tag := range []string{"1.0.0", "1.1.0", "1.0.1", "1.2.0"} {
		digests[tag] = registrytest.Push(t, repo, registrytest.Image(t, base.Add(time.Duration(i)*time.Minute)), tag).String()
	}
	r := rollguard(t, "", "images", "previous", reg.Host+"/api")
	mustCode(t, r, 0, "images previous")
	if got := strings.TrimSpace(r.stdout); got != "1.0.1" {
		t.Errorf("images previous: %q, want 1.0.1, the hotfix pushed before 1.2.0", got)
	}
	r = rollguard(t, "", "images", "previous", reg.Host+"/api", "--prefix", "1.0.", "-o", "json")
	mustCode(t, r, 0, "images previous --prefix 1.0. -o json")
	var prev struct {
		Tag, Digest, Reference string
	}
	if err := json.Unmarshal([]byte(r.stdout), &prev); err != nil {
		t.Fatalf("images previous -o json: %v\n%s", err, r.stdout)
	}
	if prev.Tag != "1.0.0" || prev.Digest != digests["1.0.0"] || prev.Reference != reg.Host+"/api:1.0.0@"+digests["1.0.0"] {
		t.Errorf("images previous --prefix 1.0.: %+v, want 1.0.0 pinned to %s", prev, digests["1.0.0"])
	}
	if r := rollguard(t, "", "images", "previous", reg.Host+"/api", "--prefix", "9."); r.code != 3 {
		t.Errorf("images previous with no matching tags: exit %d, want 3\n%s", r.code, r.stderr)
	}
}
