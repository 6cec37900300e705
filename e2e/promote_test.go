package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/rollguard/rollguard/internal/registry/registrytest"
	"github.com/rollguard/rollguard/sandbox"
)

// envProject is a repository with a rollguard.yaml and the app's manifests.
type envProject struct {
	dir    string
	config string // path of rollguard.yaml
}

// newEnvProject writes the app's manifests (a Deployment of image and an Ingress) and a rollguard.yaml
// whose environments section is envs (YAML at indent 2) with the given promotion order.
func newEnvProject(t *testing.T, image, ingressAnnotations, envs string, order ...string) *envProject {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "k8s"), 0o755); err != nil {
		t.Fatal(err)
	}
	ingress := "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n" + ingressAnnotations +
		"spec:\n  rules:\n  - host: web.example.com\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service:\n            name: web\n            port:\n              number: 80\n"
	if err := os.WriteFile(filepath.Join(dir, "k8s", "web.yaml"), []byte(app{image: image}.yaml()+"---\n"+ingress), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &envProject{dir: dir, config: filepath.Join(dir, "rollguard.yaml")}
	p.write(t, envs, order...)
	return p
}

func (p *envProject) write(t *testing.T, envs string, order ...string) {
	t.Helper()
	cfg := "apiVersion: rollguard.dev/v1\napp: web\nmanifests: [k8s/]\n"
	if len(order) > 0 {
		cfg += "promotion: [" + strings.Join(order, ", ") + "]\n"
	}
	cfg += "environments:\n" + envs
	if err := os.WriteFile(p.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// env is one environment's settings in rollguard.yaml.
func envYAML(name, context, ns, extra string) string {
	return fmt.Sprintf("  %s:\n    cluster: %s\n    namespace: %s\n    timeout: 2m\n%s", name, context, ns, extra)
}

// run runs rollguard with the project's config against the default sandbox.
func (p *envProject) run(t *testing.T, args ...string) result {
	t.Helper()
	return rollguard(t, "", append(args, "--config", p.config)...)
}

func mustCode(t *testing.T, r result, code int, what string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", what, r.code, code, r.stdout, r.stderr)
	}
}

func deploymentImage(t *testing.T, c kubernetes.Interface, ns string) string {
	t.Helper()
	d, err := c.AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !available(d) {
		t.Errorf("deployment in %s is not available: %+v", ns, d.Status)
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

// envsOutput is the subset of `rollguard envs -o json` the tests check.
type envsOutput struct {
	Environments []struct {
		Name      string   `json:"name"`
		Release   string   `json:"release"`
		Outcome   string   `json:"outcome"`
		Health    string   `json:"health"`
		DriftFrom string   `json:"driftFrom"`
		Drift     []string `json:"drift"`
		Error     string   `json:"error"`
		Workloads []struct {
			Kind    string `json:"kind"`
			Name    string `json:"name"`
			Healthy bool   `json:"healthy"`
			Images  []struct {
				Container  string `json:"container"`
				Image      string `json:"image"`
				Digest     string `json:"digest"`
				DigestFrom string `json:"digestFrom"`
			} `json:"images"`
		} `json:"workloads"`
	} `json:"environments"`
}

func parseEnvs(t *testing.T, r result) map[string]int {
	t.Helper()
	var out envsOutput
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("envs -o json: %v\n%s\n%s", err, r.stdout, r.stderr)
	}
	lastEnvs = out
	idx := map[string]int{}
	for i, e := range out.Environments {
		idx[e.Name] = i
	}
	return idx
}

var lastEnvs envsOutput

// TestPromoteAcrossNamespaces: dev, staging and production are namespaces of one cluster. A release deployed
// to dev by tag is promoted to staging and production by digest; the tag pushed again in between does not
// change what reaches production; promotions out of order, from a failed or an unhealthy source are refused.
func TestPromoteAcrossNamespaces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := registrytest.Start(t)
	repo := reg.Repo(t, "web")
	d1 := registrytest.Push(t, repo, registrytest.Image(t, time.Now()), "1.0.0").String()
	image := reg.Host + "/web:1.0.0"
	dev, staging, prod := cluster.Namespace(t), cluster.Namespace(t), cluster.Namespace(t)
	p := newEnvProject(t, image, "", envYAML("dev", "sandbox", dev, "")+envYAML("staging", "sandbox", staging, "")+envYAML("production", "sandbox", prod, ""),
		"dev", "staging", "production")
	c := cluster.Client()

	mustCode(t, p.run(t, "deploy", "--env", "dev"), 0, "deploy --env dev")
	if img := deploymentImage(t, c, dev); img != image {
		t.Fatalf("dev runs %s, want the tag %s", img, image)
	}
	if rec := record(t, dev, "web.v1"); rec.Environment != "dev" {
		t.Errorf("dev record environment %q, want dev", rec.Environment)
	}

	r := p.run(t, "promote", "--from", "dev", "--to", "production")
	mustCode(t, r, 3, "promote dev → production (skips staging)")
	if !strings.Contains(r.stderr, "production is not next after dev in the promotion order dev → staging → production; promote to staging first, or pass --force") {
		t.Errorf("refusal does not say why: %s", r.stderr)
	}
	if _, err := c.AppsV1().Deployments(prod).Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a refused promotion changed production (err %v)", err)
	}

	r = p.run(t, "promote", "--from", "dev", "--to", "staging", "-o", "json")
	mustCode(t, r, 0, "promote dev → staging")
	if rep := parseReport(t, r); rep.Outcome != "succeeded" {
		t.Errorf("promotion outcome %s", rep.Outcome)
	}
	if img := deploymentImage(t, c, staging); img != image+"@"+d1 {
		t.Fatalf("staging runs %s, want %s pinned to %s", img, image, d1)
	}

	// The tag moves: what reaches production is still what ran in staging.
	d2 := registrytest.Push(t, repo, registrytest.Image(t, time.Now()), "1.0.0").String()
	if d2 == d1 {
		t.Fatal("re-pushed image has the same digest")
	}
	mustCode(t, p.run(t, "promote", "--from", "staging", "--to", "production"), 0, "promote staging → production")
	if img := deploymentImage(t, c, prod); img != image+"@"+d1 {
		t.Fatalf("production runs %s, want the digest that ran in staging %s (the tag now points to %s)", img, d1, d2)
	}
	rec := record(t, prod, "web.v1")
	if rec.Environment != "production" || !strings.HasPrefix(rec.ChangeCause, "promoted from staging (web.v1) by ") || rec.DeployedBy == "" {
		t.Errorf("production record: environment %q, change cause %q, deployed by %q", rec.Environment, rec.ChangeCause, rec.DeployedBy)
	}
	if len(rec.Workloads) != 1 || rec.Workloads[0].Images[0] != image+"@"+d1 {
		t.Errorf("production record images %+v", rec.Workloads)
	}

	r = p.run(t, "envs", "-o", "json")
	mustCode(t, r, 0, "envs")
	idx := parseEnvs(t, r)
	envs := lastEnvs.Environments
	if len(envs) != 3 || envs[0].Name != "dev" || envs[1].Name != "staging" || envs[2].Name != "production" {
		t.Fatalf("envs not in promotion order: %s", r.stdout)
	}
	for _, e := range envs {
		if e.Release != "web.v1" || e.Outcome != "succeeded" || e.Health != "healthy" || len(e.Workloads) != 1 || !e.Workloads[0].Healthy {
			t.Errorf("%s: %+v", e.Name, e)
		}
	}
	// dev runs the tag (kwok reports no imageID), resolved now to d2; staging and production are pinned to d1.
	if im := envs[idx["dev"]].Workloads[0].Images[0]; im.Digest != d2 || im.DigestFrom != "registry" {
		t.Errorf("dev image %+v, want %s from the registry", im, d2)
	}
	if im := envs[idx["staging"]].Workloads[0].Images[0]; im.Digest != d1 || im.DigestFrom != "reference" {
		t.Errorf("staging image %+v, want %s from the reference", im, d1)
	}
	if st := envs[idx["staging"]]; st.DriftFrom != "dev" || len(st.Drift) != 1 || !strings.Contains(st.Drift[0], "Deployment/web web: "+d1[:19]+" here, "+d2[:19]+" in dev") {
		t.Errorf("staging drift from %q: %q", st.DriftFrom, st.Drift)
	}
	if pr := envs[idx["production"]]; pr.DriftFrom != "staging" || len(pr.Drift) != 0 {
		t.Errorf("production drift from %q: %q, want none", pr.DriftFrom, pr.Drift)
	}
	if envs[idx["dev"]].DriftFrom != "" {
		t.Errorf("dev has nothing before it, got drift from %q", envs[idx["dev"]].DriftFrom)
	}
	r = p.run(t, "envs")
	mustCode(t, r, 0, "envs (text)")
	for _, want := range []string{"ENV", "DRIFT", "staging differs from dev:", "none (vs staging)", "web:1.0.0@" + d1[:19]} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("envs text lacks %q:\n%s", want, r.stdout)
		}
	}

	// --force skips the order and says so in the record.
	mustCode(t, p.run(t, "promote", "--from", "dev", "--to", "production", "--force"), 0, "promote dev → production --force")
	rec = record(t, prod, "web.v2")
	if !strings.Contains(rec.ChangeCause, "promoted from dev (web.v1) by ") || !strings.Contains(rec.ChangeCause, "forced: production is not next after dev") {
		t.Errorf("forced promotion not recorded: %q", rec.ChangeCause)
	}

	// A failed source: staging's current release failed and was rolled back.
	broken := writeFile(t, "broken.yaml", app{image: image, scenario: "image-pull-failure"}.yaml())
	mustCode(t, p.run(t, "deploy", "--env", "staging", "-f", broken), 1, "broken deploy to staging")
	r = p.run(t, "promote", "--from", "staging", "--to", "production")
	mustCode(t, r, 3, "promote from a failed staging")
	if !strings.Contains(r.stderr, "refusing to promote from staging: its current release web.v2 rolled back") {
		t.Errorf("refusal does not say why: %s", r.stderr)
	}

	// An unhealthy source: dev's current release succeeded, but its Deployment was broken since.
	patch := `{"spec":{"template":{"metadata":{"labels":{"sandbox.rollguard.dev/scenario":"crash-loop"}}}}}`
	if _, err := c.AppsV1().Deployments(dev).Patch(ctx, "web", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	r = p.run(t, "promote", "--from", "dev", "--to", "staging")
	mustCode(t, r, 3, "promote from an unhealthy dev")
	if !strings.Contains(r.stderr, "refusing to promote from dev: Deployment/web is not healthy now") {
		t.Errorf("refusal does not say why: %s", r.stderr)
	}
	if img := deploymentImage(t, c, staging); img != image+"@"+d1 {
		t.Errorf("a refused promotion changed staging: %s", img)
	}
}

// TestPromoteAcrossClusters: dev and staging are separate clusters, two contexts of one kubeconfig.
func TestPromoteAcrossClusters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	second, err := sandbox.Start(ctx, sandbox.Options{Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Stop() })
	kubeconfig := mergeKubeconfigs(t, map[string]string{"one": cluster.Kubeconfig, "two": second.Kubeconfig})

	reg := registrytest.Start(t)
	d1 := registrytest.Push(t, reg.Repo(t, "web"), registrytest.Image(t, time.Now()), "1.0.0").String()
	image := reg.Host + "/web:1.0.0"
	dev, staging := cluster.Namespace(t), second.Namespace(t)
	p := newEnvProject(t, image, "", envYAML("dev", "one", dev, "")+envYAML("staging", "two", staging, ""), "dev", "staging")
	run := func(args ...string) result {
		return rollguardEnv(t, []string{"KUBECONFIG=" + kubeconfig}, "", append(args, "--config", p.config)...)
	}

	mustCode(t, run("deploy", "--env", "dev"), 0, "deploy --env dev (cluster one)")
	if img := deploymentImage(t, cluster.Client(), dev); img != image {
		t.Fatalf("dev runs %s", img)
	}
	if _, err := second.Client().AppsV1().Deployments(dev).Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dev's deploy reached cluster two (err %v)", err)
	}
	mustCode(t, run("promote", "--from", "dev", "--to", "staging"), 0, "promote dev → staging (cluster two)")
	if img := deploymentImage(t, second.Client(), staging); img != image+"@"+d1 {
		t.Fatalf("staging (cluster two) runs %s, want %s@%s", img, image, d1)
	}

	r := run("envs", "-o", "json")
	mustCode(t, r, 0, "envs")
	parseEnvs(t, r)
	envs := lastEnvs.Environments
	if len(envs) != 2 || envs[0].Health != "healthy" || envs[1].Health != "healthy" || envs[1].Release != "web.v1" {
		t.Fatalf("envs: %s", r.stdout)
	}
	if envs[1].DriftFrom != "dev" || len(envs[1].Drift) != 0 {
		t.Errorf("staging drift %q from %q, want none: both run %s", envs[1].Drift, envs[1].DriftFrom, d1)
	}
	if got := envs[1].Workloads[0].Images[0].Digest; got != d1 {
		t.Errorf("staging digest %s, want %s", got, d1)
	}
}

// mergeKubeconfigs writes one kubeconfig with a context per named sandbox kubeconfig.
func mergeKubeconfigs(t *testing.T, files map[string]string) string {
	t.Helper()
	merged := clientcmdapi.NewConfig()
	for name, f := range files {
		cfg, err := clientcmd.LoadFromFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src := cfg.Contexts[cfg.CurrentContext]
		merged.Clusters[name] = cfg.Clusters[src.Cluster]
		merged.AuthInfos[name] = cfg.AuthInfos[src.AuthInfo]
		merged.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: "default"}
		merged.CurrentContext = name
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*merged, path); err != nil {
		t.Fatal(err)
	}
	return path
}

var kongCRD sync.Once

// installKongCRD installs the KongPlugin CRD in the sandbox once and waits until it is served.
func installKongCRD(t *testing.T) {
	t.Helper()
	kongCRD.Do(func() {
		data, err := os.ReadFile(filepath.Join("testdata", "kong", "kongplugin-crd.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := sigsyaml.Unmarshal(data, &obj); err != nil {
			t.Fatal(err)
		}
		dyn := dynamic.NewForConfigOrDie(cluster.RESTConfig())
		crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
		if _, err := crds.Create(context.Background(), &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		plugins := dyn.Resource(schema.GroupVersionResource{Group: "configuration.konghq.com", Version: "v1", Resource: "kongplugins"})
		err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := plugins.List(ctx, metav1.ListOptions{})
			return err == nil, nil
		})
		if err != nil {
			t.Fatalf("KongPlugin CRD not served: %v", err)
		}
	})
}

// TestAccessPolicies applies an environment's allowlist through each integration at deploy --env, keeps it
// across a redeploy, changes it without touching the Deployment, and refuses a bad CIDR before anything
// changes.
func TestAccessPolicies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := cluster.Client()
	dyn := dynamic.NewForConfigOrDie(cluster.RESTConfig())
	kongPlugins := dyn.Resource(schema.GroupVersionResource{Group: "configuration.konghq.com", Version: "v1", Resource: "kongplugins"})
	ingressAnnotations := func(ns string) map[string]string {
		t.Helper()
		ing, err := c.NetworkingV1().Ingresses(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ing.Annotations
	}

	cases := []struct {
		provider    string
		annotations string // on the app's Ingress in its manifests
		extra       string // more access settings
		// check asserts the policy allows exactly cidrs.
		check func(t *testing.T, ns string, cidrs string)
	}{
		{
			provider: "nginx",
			check: func(t *testing.T, ns, cidrs string) {
				a := ingressAnnotations(ns)
				if a["nginx.ingress.kubernetes.io/whitelist-source-range"] != cidrs || a["nginx.ingress.kubernetes.io/allowlist-source-range"] != cidrs {
					t.Errorf("Ingress annotations %v, want both source ranges %s", a, cidrs)
				}
			},
		},
		{
			provider:    "kong",
			annotations: "  annotations:\n    konghq.com/plugins: auth\n",
			check: func(t *testing.T, ns, cidrs string) {
				if got := ingressAnnotations(ns)["konghq.com/plugins"]; got != "auth,rollguard-ip-restriction" {
					t.Errorf("konghq.com/plugins = %q, want the app's plugin kept and ours added", got)
				}
				kp, err := kongPlugins.Namespace(ns).Get(ctx, "rollguard-ip-restriction", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				plugin, _, _ := unstructured.NestedString(kp.Object, "plugin")
				allow, _, _ := unstructured.NestedStringSlice(kp.Object, "config", "allow")
				if plugin != "ip-restriction" || strings.Join(allow, ",") != cidrs {
					t.Errorf("KongPlugin plugin %q allow %v, want ip-restriction %s", plugin, allow, cidrs)
				}
			},
		},
		{
			provider: "networkpolicy",
			extra:    "      podSelector: {app: web}\n",
			check: func(t *testing.T, ns, cidrs string) {
				np, err := c.NetworkingV1().NetworkPolicies(ns).Get(ctx, "rollguard-allow-cidrs", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, rule := range np.Spec.Ingress {
					for _, from := range rule.From {
						if from.IPBlock != nil {
							got = append(got, from.IPBlock.CIDR)
						}
					}
				}
				if strings.Join(got, ",") != cidrs || np.Spec.PodSelector.MatchLabels["app"] != "web" || len(np.Spec.PolicyTypes) != 1 || np.Spec.PolicyTypes[0] != "Ingress" {
					t.Errorf("NetworkPolicy %+v, want ingress only from %s to app=web", np.Spec, cidrs)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			if tc.provider == "kong" {
				installKongCRD(t)
			}
			ns, open := cluster.Namespace(t), cluster.Namespace(t)
			policy := func(cidrs string) string {
				return "    access:\n      provider: " + tc.provider + "\n      allowCIDRs: [" + cidrs + "]\n" + tc.extra
			}
			envs := func(cidrs string) string {
				return envYAML("staging", "sandbox", ns, policy(cidrs)) + envYAML("open", "sandbox", open, "")
			}
			p := newEnvProject(t, "registry.example.com/web:1.0.0", tc.annotations, envs("10.0.0.0/8, 192.168.1.7/16"))

			mustCode(t, p.run(t, "deploy", "--env", "staging"), 0, "deploy --env staging")
			tc.check(t, ns, "10.0.0.0/8,192.168.0.0/16")

			// A redeploy of the same manifests keeps the policy: it is not stripped by the app's own apply.
			mustCode(t, p.run(t, "deploy", "--env", "staging"), 0, "redeploy --env staging")
			tc.check(t, ns, "10.0.0.0/8,192.168.0.0/16")

			before, err := c.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p.write(t, envs("203.0.113.0/24"))
			r := p.run(t, "access", "apply", "--env", "staging")
			mustCode(t, r, 0, "access apply with a new allowlist")
			tc.check(t, ns, "203.0.113.0/24")
			after, err := c.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if after.ResourceVersion != before.ResourceVersion || after.Generation != before.Generation {
				t.Errorf("changing the allowlist modified the Deployment: resourceVersion %s → %s, generation %d → %d",
					before.ResourceVersion, after.ResourceVersion, before.Generation, after.Generation)
			}

			// A CIDR that does not parse is refused before anything changes.
			p.write(t, envs("203.0.113.0/24, 10.0.0.0/33"))
			for _, args := range [][]string{{"access", "apply", "--env", "staging"}, {"deploy", "--env", "staging"}} {
				r := p.run(t, args...)
				mustCode(t, r, 3, strings.Join(args, " ")+" with a bad CIDR")
				if !strings.Contains(r.stderr, `environments.staging.access.allowCIDRs[1]: "10.0.0.0/33" is not a CIDR`) {
					t.Errorf("error does not name the bad CIDR: %s", r.stderr)
				}
			}
			tc.check(t, ns, "203.0.113.0/24")

			// An environment without an access policy is left alone.
			p.write(t, envs("203.0.113.0/24"))
			mustCode(t, p.run(t, "deploy", "--env", "open"), 0, "deploy --env open")
			for k := range ingressAnnotations(open) {
				if strings.Contains(k, "source-range") || k == "konghq.com/plugins" && tc.provider != "kong" {
					t.Errorf("open environment's Ingress got %s", k)
				}
			}
			if got := ingressAnnotations(open)["konghq.com/plugins"]; tc.provider == "kong" && got != "auth" {
				t.Errorf("open environment's Kong plugins changed to %q", got)
			}
			if _, err := c.NetworkingV1().NetworkPolicies(open).Get(ctx, "rollguard-allow-cidrs", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("open environment got a NetworkPolicy (err %v)", err)
			}
		})
	}
}

// TestEnvConfigErrors: a bad rollguard.yaml is refused with one line naming the key, exit 3, and nothing
// changes.
func TestEnvConfigErrors(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	good := envYAML("dev", "sandbox", ns, "") + envYAML("staging", "sandbox", ns+"-staging", "")
	cases := []struct {
		name  string
		envs  string
		order []string
		args  []string
		want  string
	}{
		{"unknown environment", good, []string{"dev", "staging"}, []string{"deploy", "--env", "qa"}, `no environment "qa"; environments are dev, staging`},
		{"unknown environment in promote", good, []string{"dev", "staging"}, []string{"promote", "--from", "dev", "--to", "qa"}, `no environment "qa"`},
		{"unknown environment in order", good, []string{"dev", "qa"}, []string{"deploy", "--env", "dev"}, `promotion[1]: unknown environment "qa"`},
		{"cycle in the order", good, []string{"dev", "staging", "dev"}, []string{"envs"}, `promotion[2]: "dev" appears twice: dev → staging → dev is a cycle`},
		{"missing context", envYAML("dev", "nowhere", ns, ""), nil, []string{"deploy", "--env", "dev"}, `environments.dev.cluster: the kubeconfig has no context "nowhere" (contexts: sandbox)`},
		{"missing context in promote", good + envYAML("prod", "nowhere", ns+"-prod", ""), []string{"dev", "staging", "prod"}, []string{"promote", "--from", "prod", "--to", "staging", "--force"}, `environments.prod.cluster: the kubeconfig has no context "nowhere"`},
		{"bad CIDR", envYAML("dev", "sandbox", ns, "    access:\n      provider: networkpolicy\n      allowCIDRs: [300.0.0.0/8]\n"), nil, []string{"deploy", "--env", "dev"}, `environments.dev.access.allowCIDRs[0]: "300.0.0.0/8" is not a CIDR`},
		{"unknown key", envYAML("dev", "sandbox", ns, "    onFailur: hold\n"), nil, []string{"deploy", "--env", "dev"}, `environments.dev.onFailur: unknown key`},
		{"bad on-failure", envYAML("dev", "sandbox", ns, "    onFailure: retry\n"), nil, []string{"deploy", "--env", "dev"}, `environments.dev.onFailure: must be rollback, approve, hold or none`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newEnvProject(t, "registry.example.com/web:1.0.0", "", tc.envs, tc.order...)
			r := p.run(t, tc.args...)
			if r.code != 3 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
				t.Errorf("exit %d, stderr %q; want exit 3 and one line containing %q", r.code, r.stderr, tc.want)
			}
		})
	}
	if _, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a refused config deployed something (err %v)", err)
	}
}
