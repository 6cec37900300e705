package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type historyEntry struct {
	Revision       int64    `json:"revision"`
	Release        string   `json:"release"`
	Outcome        string   `json:"outcome"`
	Reason         string   `json:"reason"`
	ChangeCause    string   `json:"changeCause"`
	DeployedBy     string   `json:"deployedBy"`
	Images         []string `json:"images"`
	RolledBackTo   string   `json:"rolledBackTo"`
	RollbackTarget []string `json:"rollbackTargetOf"`
}

// TestHistoryShowsOutcomes: a healthy release, then a broken one rolled back, appear in the history with
// who, what and how each ended, and which release the rollback returned to.
func TestHistoryShowsOutcomes(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployV1(t, ns)
	if r := rollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--timeout", "5m", "--change-cause", "web 2.0.0"); r.code != 1 {
		t.Fatalf("v2: exit %d, want 1\n%s", r.code, r.stderr)
	}
	r := rollguard(t, "", "history", "deployment/web", "-n", ns, "-o", "json")
	if r.code != 0 {
		t.Fatalf("history: exit %d\n%s", r.code, r.stderr)
	}
	noSecrets(t, r.stdout, r.stderr)
	var h struct {
		Entries []historyEntry `json:"entries"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		t.Fatalf("history -o json: %v\n%s", err, r.stdout)
	}
	byRelease := map[string]historyEntry{}
	for _, e := range h.Entries {
		if e.Release != "" {
			byRelease[e.Release] = e
		}
	}
	v1, v2 := byRelease["web.v1"], byRelease["web.v2"]
	if v1.Outcome != "succeeded" || v2.Outcome != "rolled_back" {
		t.Fatalf("outcomes v1=%q v2=%q, want succeeded and rolled_back\n%s", v1.Outcome, v2.Outcome, r.stdout)
	}
	if v2.Reason != "ImagePullFailed" || v2.ChangeCause != "web 2.0.0" || v2.DeployedBy == "" {
		t.Errorf("v2 entry lacks reason, change cause or deployer: %+v", v2)
	}
	if v2.RolledBackTo != "web.v1" {
		t.Errorf("v2 rolled back to %q, want web.v1", v2.RolledBackTo)
	}
	text := rollguard(t, "", "history", "deployment/web", "-n", ns)
	if text.code != 0 || !strings.Contains(text.stdout, "rolled back") {
		t.Errorf("text history: exit %d\n%s", text.code, text.stdout)
	}
}

// TestUndoEqualsKubectl: `rollguard undo --to-revision N` writes what the sandbox's real kubectl writes with
// `kubectl rollout undo --to-revision N`: two namespaces get the same four revisions, one is undone by
// rollguard, the other by kubectl, and the Deployments must end with the same template and revision number.
// --to-image previous skips revisions that changed only configuration (revision 3 here) and goes where
// kubectl's --to-revision of that revision goes.
func TestUndoEqualsKubectl(t *testing.T) {
	t.Parallel()
	ns, twin := cluster.Namespace(t), cluster.Namespace(t)
	ctx := context.Background()
	// Revision 4 changes only an annotation of the pod template, not the image.
	revisions := []string{
		app{image: "registry.example.com/web:1.0.0"}.yaml(), app{image: "registry.example.com/web:1.1.0"}.yaml(),
		app{image: "registry.example.com/web:1.2.0"}.yaml(),
		app{image: "registry.example.com/web:1.2.0", annotations: map[string]string{"config-version": "2"}}.yaml(),
	}
	for _, n := range []string{ns, twin} {
		for i, m := range revisions {
			if r := rollguard(t, m, "deploy", "-f", "-", "-n", n, "--timeout", "2m"); r.code != 0 {
				t.Fatalf("deploy revision %d in %s: exit %d\n%s", i+1, n, r.code, r.stderr)
			}
		}
	}
	same := func(step string) {
		t.Helper()
		mine, err := cluster.Client().AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := cluster.Client().AppsV1().Deployments(twin).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !apiequality.Semantic.DeepEqual(mine.Spec.Template, theirs.Spec.Template) {
			t.Errorf("%s: rollguard's template differs from kubectl's:\n rollguard %+v\n kubectl   %+v", step, mine.Spec.Template, theirs.Spec.Template)
		}
		if a, b := mine.Annotations["deployment.kubernetes.io/revision"], theirs.Annotations["deployment.kubernetes.io/revision"]; a != b {
			t.Errorf("%s: rollguard's undo is revision %s, kubectl's %s", step, a, b)
		}
	}

	// The image before 1.2.0 is 1.1.0 (revision 2): revision 3 (1.2.0 without the annotation) changed no image.
	if r := rollguard(t, "", "undo", "deployment/web", "-n", ns, "--to-image", "previous", "--timeout", "2m"); r.code != 0 {
		t.Fatalf("undo --to-image previous: exit %d\n%s", r.code, r.stderr)
	}
	kubectl(t, "", "rollout", "undo", "deployment/web", "-n", twin, "--to-revision", "2")
	// rollguard undo waits for the rollout; kubectl waits as `rollout status` does.
	kubectl(t, "", "rollout", "status", "deployment/web", "-n", twin, "--timeout", "2m")
	if got := deploymentImage(t, cluster.Client(), ns); got != "registry.example.com/web:1.1.0" {
		t.Errorf("--to-image previous went to %s, want registry.example.com/web:1.1.0", got)
	}
	same("undo --to-image previous vs kubectl rollout undo --to-revision 2")

	if r := rollguard(t, "", "undo", "deployment/web", "-n", ns, "--to-revision", "1", "--timeout", "2m"); r.code != 0 {
		t.Fatalf("undo --to-revision 1: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	kubectl(t, "", "rollout", "undo", "deployment/web", "-n", twin, "--to-revision", "1")
	// rollguard undo waits for the rollout; kubectl waits as `rollout status` does.
	kubectl(t, "", "rollout", "status", "deployment/web", "-n", twin, "--timeout", "2m")
	same("undo --to-revision 1 vs kubectl rollout undo --to-revision 1")
	d, err := cluster.Client().AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := revisionTemplate(t, ns, d, "1.0.0"); !apiequality.Semantic.DeepEqual(d.Spec.Template, want) {
		t.Errorf("template after undo differs from revision 1's:\n got %+v\nwant %+v", d.Spec.Template, want)
	}
}

// revisionTemplate is the pod template of the Deployment's ReplicaSet running image tag, minus the hash
// label: what kubectl's rollback writes back.
func revisionTemplate(t *testing.T, ns string, d *appsv1.Deployment, tag string) corev1.PodTemplateSpec {
	t.Helper()
	rss, err := cluster.Client().AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range rss.Items {
		if metav1.IsControlledBy(&rs, d) && strings.HasSuffix(rs.Spec.Template.Spec.Containers[0].Image, ":"+tag) {
			tpl := *rs.Spec.Template.DeepCopy()
			delete(tpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
			return tpl
		}
	}
	t.Fatalf("no ReplicaSet runs %s", tag)
	return corev1.PodTemplateSpec{}
}
