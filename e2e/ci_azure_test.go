package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAzurePipelineHealthyRelease: the deploy stage gets credentials the way the original pipeline did
// (az aks get-credentials, kubelogin convert-kubeconfig -l azurecli), installs the release named by
// rollguardVersion, deploys, publishes the JUnit report and sets the output variables; approval and
// rollback are skipped, clean-up runs and the kubeconfig is gone.
func TestAzurePipelineHealthyRelease(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	a := newADOAgent(t, nil)
	params := adoParameters(ns)
	params["manifests"] = []any{writeManifests(t, app{}.yaml())}
	params["images"] = []any{"web=registry.example.com/web:1.0.2"}
	params["rollguardVersion"] = "v9.9.7"
	params["downloadUrl"] = releaseServer(t, "v9.9.7", false)
	stages := a.runADO(t, params)
	wantStages(t, stages, map[string]string{
		"rollguard_deploy_prod_eu": "Succeeded", "rollguard_approval_prod_eu": "Skipped",
		"rollguard_rollback_prod_eu": "Skipped", "rollguard_cleanup_prod_eu": "Succeeded",
	})
	deploy := stages["rollguard_deploy_prod_eu"].jobs["rollguard"]
	for k, v := range map[string]string{"ROLLGUARD_OUTCOME": "succeeded", "ROLLGUARD_RELEASE": "web.v1", "ROLLGUARD_REVISION": "1",
		"ROLLGUARD_EXIT_CODE": "0", "ROLLGUARD_HELD": "false", "ROLLGUARD_ROLLED_BACK": "false"} {
		if got := deploy.outputs["rollguard."+k]; got != v {
			t.Errorf("output rollguard.%s = %q, want %q\n%s", k, got, v, deploy.log)
		}
	}
	if len(deploy.published) != 1 {
		t.Errorf("published JUnit files: %v, want the deploy's report", deploy.published)
	}
	for _, junit := range deploy.published {
		if !strings.Contains(junit, "<testsuite") || !strings.Contains(junit, "Deployment/web") {
			t.Errorf("JUnit report:\n%s", junit)
		}
	}
	calls, _ := os.ReadFile(a.stubLog)
	for _, want := range []string{"az aks get-credentials --resource-group rg-prod --name aks-prod --subscription sub-1234 --file ", "kubelogin convert-kubeconfig -l azurecli --kubeconfig "} {
		if !strings.Contains(string(calls), want) {
			t.Errorf("no call %q; calls:\n%s", want, calls)
		}
	}
	if _, err := os.Stat(filepath.Join(a.tools, "rollguard", "v9.9.7", "rollguard")); err != nil {
		t.Errorf("rollguard v9.9.7 is not in the agent's tool cache: %v", err)
	}
}

// TestAzurePipelineHeldRelease: a broken release is held (deploy stage succeeded with issues), the
// ManualValidation runs; resumed, the rollback stage rolls back and proves it healthy and clean-up turns
// the run red with exit 1; rejected, nothing is rolled back and clean-up exits 2.
func TestAzurePipelineHeldRelease(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	a := newADOAgent(t, nil)
	params := func(manifests string) map[string]any {
		p := adoParameters(ns)
		p["manifests"] = []any{manifests}
		p["rollguardVersion"] = "v9.9.6"
		p["downloadUrl"] = releaseServer(t, "v9.9.6", false)
		return p
	}
	stages := a.runADO(t, params(writeManifests(t, app{}.yaml())))
	wantStages(t, stages, map[string]string{"rollguard_deploy_prod_eu": "Succeeded", "rollguard_cleanup_prod_eu": "Succeeded"})

	broken := writeManifests(t, app{image: "registry.example.com/web:2.0.0", scenario: "image-pull-failure"}.yaml())
	a.approve = true
	stages = a.runADO(t, params(broken))
	wantStages(t, stages, map[string]string{
		"rollguard_deploy_prod_eu": "SucceededWithIssues", "rollguard_approval_prod_eu": "Succeeded",
		"rollguard_rollback_prod_eu": "Succeeded", "rollguard_cleanup_prod_eu": "Failed",
	})
	deploy := stages["rollguard_deploy_prod_eu"].jobs["rollguard"]
	if deploy.outputs["rollguard.ROLLGUARD_OUTCOME"] != "pending_approval" || deploy.outputs["rollguard.ROLLGUARD_REASON"] != "ImagePullFailed" {
		t.Errorf("deploy outputs %v, want pending_approval with ImagePullFailed", deploy.outputs)
	}
	if in := stages["rollguard_approval_prod_eu"].jobs["approve"].instructions; !strings.Contains(in, "web.v2") || !strings.Contains(in, "ImagePullFailed") {
		t.Errorf("the approval's instructions do not name the release and reason:\n%s", in)
	}
	rollback := stages["rollguard_rollback_prod_eu"].jobs["rollguard"]
	if rollback.outputs["rollguard.ROLLGUARD_ROLLED_BACK"] != "true" || rollback.outputs["rollguard.ROLLGUARD_EXIT_CODE"] != "0" {
		t.Errorf("rollback outputs %v, want rolled back with exit 0\n%s", rollback.outputs, rollback.log)
	}
	if len(rollback.published) != 1 {
		t.Errorf("rollback published %v, want its JUnit report", rollback.published)
	}
	if log := stages["rollguard_cleanup_prod_eu"].jobs["cleanup"].log; !strings.Contains(log, "(exit 1)") || !strings.Contains(log, "rolled back") {
		t.Errorf("clean-up verdict, want exit 1 (failed, rolled back):\n%s", log)
	}
	d, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != "registry.example.com/web:1.0.0" {
		t.Fatalf("after the rollback the deployment should run 1.0.0 again (%v)", err)
	}

	a.approve = false
	stages = a.runADO(t, params(broken))
	wantStages(t, stages, map[string]string{
		"rollguard_deploy_prod_eu": "SucceededWithIssues", "rollguard_approval_prod_eu": "Failed",
		"rollguard_rollback_prod_eu": "Skipped", "rollguard_cleanup_prod_eu": "Failed",
	})
	if log := stages["rollguard_cleanup_prod_eu"].jobs["cleanup"].log; !strings.Contains(log, "(exit 2)") {
		t.Errorf("clean-up verdict, want exit 2 (not recovered):\n%s", log)
	}
}

// TestAzurePipelineStatusOnly: without manifests the template is the original pipeline exactly: it
// watches a rollout something else started (rollguard status instead of kubectl rollout status), and a
// failed one goes through the approval to rollguard undo (instead of kubectl rollout undo), proven healthy.
func TestAzurePipelineStatusOnly(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	if r := rollguard(t, app{}.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m"); r.code != 0 {
		t.Fatalf("v1: exit %d\n%s", r.code, r.stderr)
	}
	broken := app{image: "registry.example.com/web:2.0.0", scenario: "image-pull-failure"}.yaml()
	if r := rollguard(t, broken, "deploy", "-f", "-", "-n", ns, "--timeout", "2m", "--on-failure", "none"); r.code != 2 {
		t.Fatalf("v2 (left failed): exit %d, want 2\n%s", r.code, r.stderr)
	}
	a := newADOAgent(t, nil)
	a.approve = true
	params := adoParameters(ns)
	params["rollguardVersion"] = "v9.9.4"
	params["downloadUrl"] = releaseServer(t, "v9.9.4", false)
	stages := a.runADO(t, params)
	wantStages(t, stages, map[string]string{
		"rollguard_deploy_prod_eu": "SucceededWithIssues", "rollguard_approval_prod_eu": "Succeeded",
		"rollguard_rollback_prod_eu": "Succeeded", "rollguard_cleanup_prod_eu": "Failed",
	})
	if log := stages["rollguard_deploy_prod_eu"].jobs["rollguard"].log; !strings.Contains(log, "ImagePullFailed") {
		t.Errorf("the status check does not say why the rollout failed:\n%s", log)
	}
	rollback := stages["rollguard_rollback_prod_eu"].jobs["rollguard"]
	if rollback.outputs["rollguard.ROLLGUARD_EXIT_CODE"] != "0" || rollback.outputs["rollguard.ROLLGUARD_ROLLED_BACK"] != "true" {
		t.Errorf("undo outputs %v, want exit 0, rolled back\n%s", rollback.outputs, rollback.log)
	}
	if log := stages["rollguard_cleanup_prod_eu"].jobs["cleanup"].log; !strings.Contains(log, "(exit 1)") {
		t.Errorf("clean-up verdict, want exit 1 (failed, rolled back):\n%s", log)
	}
	d, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != "registry.example.com/web:1.0.0" {
		t.Fatalf("after the undo the deployment should run 1.0.0 again (%v)", err)
	}
}

// adoStubs writes the az and kubelogin stubs.
func adoStubs(t *testing.T, dir string) {
	t.Helper()
	az := `#!/bin/sh
# Stub of the Azure CLI for the template tests (Azure cannot be reached from here): az aks get-credentials
# checks the cluster it is asked for and writes the sandbox's kubeconfig to --file.
echo "az $*" >> "$STUB_LOG"
[ "$1 $2" = "aks get-credentials" ] || { echo "az stub: unexpected command: $*" >&2; exit 2; }
shift 2
file="$HOME/.kube/config"
while [ $# -gt 0 ]; do
  case "$1" in
    --resource-group|-g) rg=$2; shift 2 ;;
    --name|-n) name=$2; shift 2 ;;
    --subscription) sub=$2; shift 2 ;;
    --file|-f) file=$2; shift 2 ;;
    --overwrite-existing) shift ;;
    *) echo "az stub: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$rg/$name/$sub" = "$STUB_AKS" ] || { echo "ERROR: (ResourceNotFound) cluster $rg/$name in $sub" >&2; exit 3; }
mkdir -p "$(dirname "$file")" && cp "$STUB_KUBECONFIG" "$file"
`
	kubelogin := `#!/bin/sh
# Stub of kubelogin for the template tests: checks convert-kubeconfig -l azurecli names an existing
# kubeconfig. The real one rewrites its users to an exec plugin; the sandbox's client certificates stay.
echo "kubelogin $*" >> "$STUB_LOG"
[ "$1" = convert-kubeconfig ] || { echo "kubelogin stub: unexpected command: $*" >&2; exit 2; }
shift
login="" file="${KUBECONFIG:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    -l|--login) login=$2; shift 2 ;;
    --kubeconfig) file=$2; shift 2 ;;
    *) echo "kubelogin stub: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$login" = azurecli ] || { echo "kubelogin stub: -l $login, want azurecli" >&2; exit 2; }
[ -f "$file" ] || { echo "kubelogin stub: no kubeconfig at $file" >&2; exit 1; }
`
	for name, s := range map[string]string{"az": az, "kubelogin": kubelogin} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}
