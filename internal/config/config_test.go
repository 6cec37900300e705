package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/internal/access"
	"github.com/rollguard/rollguard/internal/exitcode"
)

const valid = `apiVersion: rollguard.dev/v1
app: web
manifests: [k8s/]
promotion: [dev, staging, production]
environments:
  dev:
    cluster: kind-dev
    namespace: web-dev
    access:
      provider: nginx
      allowCIDRs: [10.1.2.3/8, 192.168.0.0/16, 10.0.0.0/8]
  staging:
    cluster: shared
    namespace: web-staging
    timeout: 2m
    onFailure: approve
    approval: {timeout: 30m, timeoutAction: reject}
    access:
      provider: networkpolicy
      allowCIDRs: ["2001:db8::/32"]
      podSelector: {app: web}
  production:
    cluster: prod
    namespace: web
    manifests: [overlays/prod]
    bake: 5m
    onIrreversible: approve
    requireProbes: true
  preview:
    cluster: kind-dev
    namespace: web-preview
`

func TestParse(t *testing.T) {
	cfg, err := Parse("rollguard.yaml", []byte(valid), "/repo")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.App != "web" || strings.Join(cfg.Manifests, ",") != "/repo/k8s" {
		t.Errorf("app %q manifests %v", cfg.App, cfg.Manifests)
	}
	if got := strings.Join(cfg.Names(), ","); got != "dev,staging,production,preview" {
		t.Errorf("Names() = %s", got)
	}
	if cfg.Next("dev") != "staging" || cfg.Next("production") != "" || cfg.Next("preview") != "" || cfg.Previous("staging") != "dev" {
		t.Errorf("Next/Previous wrong")
	}
	dev, _ := cfg.Env("dev")
	if dev.Timeout != DefaultTimeout || dev.OnFailure != "rollback" || dev.Approval.TimeoutAction != "rollback" {
		t.Errorf("dev defaults: %+v", dev)
	}
	if dev.Access == nil || dev.Access.Provider != access.Nginx || strings.Join(dev.Access.AllowCIDRs, ",") != "10.0.0.0/8,192.168.0.0/16" {
		t.Errorf("dev access (CIDRs masked and deduplicated): %+v", dev.Access)
	}
	st, _ := cfg.Env("staging")
	if st.Timeout != 2*time.Minute || st.OnFailure != "approve" || st.Approval.Timeout != 30*time.Minute || st.Approval.TimeoutAction != "reject" {
		t.Errorf("staging: %+v", st)
	}
	if st.Access.PodSelector["app"] != "web" {
		t.Errorf("staging podSelector %v", st.Access.PodSelector)
	}
	prod, _ := cfg.Env("production")
	if prod.Bake != 5*time.Minute || prod.OnIrreversible != "approve" || !prod.RequireProbes || dev.Bake != 0 || dev.OnIrreversible != "" || dev.RequireProbes {
		t.Errorf("release phase settings: production %v %q %v; dev %v %q %v", prod.Bake, prod.OnIrreversible, prod.RequireProbes, dev.Bake, dev.OnIrreversible, dev.RequireProbes)
	}
	if prod.Access != nil || strings.Join(cfg.ManifestsOf(prod), ",") != "/repo/overlays/prod" || strings.Join(cfg.ManifestsOf(dev), ",") != "/repo/k8s" {
		t.Errorf("production: %+v", prod)
	}
	if _, err := cfg.Env("qa"); err == nil || exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), `no environment "qa"; environments are dev, staging, production, preview`) {
		t.Errorf("Env(qa) = %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"empty", "", "rollguard.yaml: is empty"},
		{"not yaml", "app: [", "rollguard.yaml: not valid YAML"},
		{"no apiVersion", "app: web\n", "rollguard.yaml:1: apiVersion: required"},
		{"wrong apiVersion", "apiVersion: v2\n", "rollguard.yaml:1: apiVersion: must be rollguard.dev/v1"},
		{"unknown top key", "apiVersion: rollguard.dev/v1\napp: web\nenviroments: {}\n", "rollguard.yaml:3: enviroments: unknown key"},
		{"no environments", "apiVersion: rollguard.dev/v1\napp: web\nmanifests: [k8s]\n", "environments: required"},
		{"unknown env key", env("    clutser: x\n"), "rollguard.yaml:8: environments.dev.clutser: unknown key; known keys here are cluster, namespace"},
		{"missing cluster", "apiVersion: rollguard.dev/v1\napp: web\nmanifests: [k8s]\nenvironments:\n  dev:\n    namespace: d\n", "rollguard.yaml:6: environments.dev.cluster: required"},
		{"missing namespace", "apiVersion: rollguard.dev/v1\napp: web\nmanifests: [k8s]\nenvironments:\n  dev:\n    cluster: c\n", "environments.dev.namespace: required"},
		{"bad onFailure", env("    onFailure: retry\n"), "rollguard.yaml:8: environments.dev.onFailure: must be rollback, approve, hold or none, got \"retry\""},
		{"bad timeout", env("    timeout: soon\n"), "environments.dev.timeout: must be a positive duration"},
		{"negative timeout", env("    timeout: -1m\n"), "environments.dev.timeout: must be a positive duration"},
		{"bad approval action", env("    approval:\n      timeoutAction: maybe\n"), "environments.dev.approval.timeoutAction: must be rollback or reject"},
		{"unknown approval key", env("    approval:\n      wait: 1h\n"), "environments.dev.approval.wait: unknown key"},
		{"bad CIDR", env("    access:\n      provider: nginx\n      allowCIDRs: [10.0.0.0/8, 10.0.0.0/33]\n"), "rollguard.yaml:10: environments.dev.access.allowCIDRs[1]: \"10.0.0.0/33\" is not a CIDR"},
		{"address not CIDR", env("    access:\n      provider: nginx\n      allowCIDRs: [203.0.113.7]\n"), "a single address is 203.0.113.7/32"},
		{"empty allowlist", env("    access:\n      provider: kong\n      allowCIDRs: []\n"), "environments.dev.access.allowCIDRs: required"},
		{"bad provider", env("    access:\n      provider: traefik\n      allowCIDRs: [10.0.0.0/8]\n"), "rollguard.yaml:9: environments.dev.access.provider: must be nginx, kong or networkpolicy, got \"traefik\""},
		{"selector without networkpolicy", env("    access:\n      provider: nginx\n      allowCIDRs: [10.0.0.0/8]\n      podSelector: {app: web}\n"), "access.podSelector: only used with provider networkpolicy"},
		{"unknown env in order", env("") + "promotion: [dev, qa]\n", "rollguard.yaml:8: promotion[1]: unknown environment \"qa\"; environments are dev"},
		{"cycle", env("") + "  prod:\n    cluster: c\n    namespace: p\npromotion: [dev, prod, dev]\n", "promotion[2]: \"dev\" appears twice: dev → prod → dev is a cycle"},
		{"order not a list", env("") + "promotion: dev\n", "promotion: must be a list"},
		{"no manifests", "apiVersion: rollguard.dev/v1\napp: web\nenvironments:\n  dev:\n    cluster: c\n    namespace: d\n", "environments.dev.manifests: required"},
		{"bad env name", "apiVersion: rollguard.dev/v1\napp: web\nmanifests: [k8s]\nenvironments:\n  Dev:\n    cluster: c\n    namespace: d\n", "environments.Dev: environment names use lower-case"},
		{"duplicate key", env("    namespace: again\n"), "environments.dev.namespace: set twice"},
		{"bad bake", env("    bake: a while\n"), "environments.dev.bake: must be a positive duration"},
		{"bad onIrreversible", env("    onIrreversible: retry\n"), "environments.dev.onIrreversible: must be hold, approve or rollback, got \"retry\""},
		{"bad requireProbes", env("    requireProbes: yes please\n"), "environments.dev.requireProbes: must be true or false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("rollguard.yaml", []byte(tc.yaml), "/repo")
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			if exitcode.Of(err) != exitcode.BadInput {
				t.Errorf("exit code %d, want 3", exitcode.Of(err))
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line containing %q", err, tc.want)
			}
		})
	}
}

// env is a valid config with one environment "dev" whose settings end with extra (lines at indent 4).
func env(extra string) string {
	return "apiVersion: rollguard.dev/v1\napp: web\nmanifests: [k8s]\nenvironments:\n  dev:\n    cluster: c\n    namespace: d\n" + extra
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rg.yaml")
	if err := os.WriteFile(p, []byte(env("")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Manifests[0] != filepath.Join(dir, "k8s") {
		t.Errorf("manifests not relative to the config file: %v", cfg.Manifests)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing file: %v", err)
	}
}

func TestNotifyTargets(t *testing.T) {
	cfg, err := Parse("rollguard.yaml", []byte(`apiVersion: rollguard.dev/v1
app: web
manifests: [k8s/]
environments:
  production:
    cluster: prod
    namespace: web
    notify: ["slack+${SLACK_WEBHOOK}", "$TEAMS_WEBHOOK"]
`), "/repo")
	if err != nil {
		t.Fatal(err)
	}
	env := cfg.Environments["production"]
	vars := map[string]string{"SLACK_WEBHOOK": "https://hooks.slack.com/services/secret"}
	_, err = env.NotifyTargets(cfg.Path, func(k string) string { return vars[k] })
	if exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "environments.production.notify[1]: environment variable TEAMS_WEBHOOK is not set") {
		t.Errorf("unset variable: %v", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error shows a webhook URL: %v", err)
	}
	vars["TEAMS_WEBHOOK"] = "https://x.logic.azure.com/w"
	got, err := env.NotifyTargets(cfg.Path, func(k string) string { return vars[k] })
	if err != nil || len(got) != 2 || got[0] != "slack+https://hooks.slack.com/services/secret" || got[1] != "https://x.logic.azure.com/w" {
		t.Errorf("got %v, %v", got, err)
	}
	if _, err := Parse("rollguard.yaml", []byte("apiVersion: rollguard.dev/v1\napp: web\nmanifests: [k]\nenvironments:\n  dev: {cluster: c, namespace: n, notify: https://x}\n"), "/"); err == nil ||
		!strings.Contains(err.Error(), "environments.dev.notify: must be a list") {
		t.Errorf("notify as a string: %v", err)
	}
}
