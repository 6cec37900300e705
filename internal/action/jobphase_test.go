package action

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/manifest"
)

func job(annotations map[string]string) *manifest.Object {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("batch/v1")
	u.SetKind("Job")
	u.SetName("migrate")
	u.SetAnnotations(annotations)
	return &manifest.Object{Unstructured: u, Source: "<stdin>:1"}
}

func TestPhaseOf(t *testing.T) {
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		install     bool
		want        string
	}{
		{"plain job runs with the rollout", nil, false, ""},
		{"rollguard pre-deploy", map[string]string{PhaseAnnotation: "pre-deploy"}, false, PhasePreDeploy},
		{"rollguard verify", map[string]string{PhaseAnnotation: "verify"}, true, PhaseVerify},
		{"helm pre-upgrade on an upgrade", map[string]string{helmHook: "pre-upgrade"}, false, PhasePreDeploy},
		{"helm pre-install,pre-upgrade on an install", map[string]string{helmHook: "pre-install, pre-upgrade"}, true, PhasePreDeploy},
		{"helm pre-install only, on an upgrade: not run", map[string]string{helmHook: "pre-install"}, false, phaseSkipped},
		{"helm post-upgrade verifies", map[string]string{helmHook: "post-install,post-upgrade"}, false, PhaseVerify},
		{"helm test hook: not run at deploy", map[string]string{helmHook: "test"}, false, phaseSkipped},
		{"helm pre-rollback: not run at deploy", map[string]string{helmHook: "pre-rollback"}, false, phaseSkipped},
		{"rollguard's annotation wins over helm's", map[string]string{helmHook: "test", PhaseAnnotation: "verify"}, false, PhaseVerify},
	} {
		got, err := phaseOf(job(tc.annotations), tc.install)
		if err != nil || got != tc.want {
			t.Errorf("%s: phase %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	_, err := phaseOf(job(map[string]string{PhaseAnnotation: "post-deploy"}), false)
	if exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "pre-deploy or verify") {
		t.Errorf("unknown phase: %v, want bad input naming the phases", err)
	}
}

func TestRecreated(t *testing.T) {
	for _, tc := range []struct {
		annotations map[string]string
		phase       string
		want        bool
	}{
		{map[string]string{PhaseAnnotation: "pre-deploy"}, PhasePreDeploy, false}, // unchanged: not run twice
		{map[string]string{PhaseAnnotation: "verify"}, PhaseVerify, true},         // checks this release
		{map[string]string{helmHook: "pre-upgrade"}, PhasePreDeploy, true},        // Helm's default policy
		{map[string]string{helmHook: "pre-upgrade", helmHookDeletePolicy: "hook-succeeded"}, PhasePreDeploy, false},
		{map[string]string{helmHook: "pre-upgrade", helmHookDeletePolicy: "before-hook-creation,hook-succeeded"}, PhasePreDeploy, true},
	} {
		if got := recreated(job(tc.annotations), tc.phase); got != tc.want {
			t.Errorf("%v in %s: recreated %v, want %v", tc.annotations, tc.phase, got, tc.want)
		}
	}
}

func TestAfterIrreversible(t *testing.T) {
	for _, tc := range []struct {
		policy OnFailure
		on     OnIrreversible
		want   OnFailure
	}{
		{OnFailureRollback, IrreversibleHold, OnFailureHold},
		{OnFailureRollback, IrreversibleApprove, OnFailureApprove},
		{OnFailureRollback, IrreversibleRollback, OnFailureRollback},
		{OnFailureNone, IrreversibleHold, OnFailureNone},
		{OnFailureApprove, IrreversibleHold, OnFailureApprove},
	} {
		if got := afterIrreversible(tc.policy, tc.on); got != tc.want {
			t.Errorf("%s with --on-irreversible %s: %s, want %s", tc.policy, tc.on, got, tc.want)
		}
	}
	if _, err := ParseOnIrreversible("later"); exitcode.Of(err) != exitcode.BadInput {
		t.Errorf("ParseOnIrreversible(later) = %v, want bad input", err)
	}
}

// A migration Job first in the manifests does not rename the release: its records and lock stay the app's.
func TestDefaultAppSkipsPhaseJobs(t *testing.T) {
	web := &unstructured.Unstructured{}
	web.SetAPIVersion("apps/v1")
	web.SetKind("Deployment")
	web.SetName("web")
	objs := []*manifest.Object{job(map[string]string{PhaseAnnotation: PhasePreDeploy}), {Unstructured: web}}
	if got := defaultApp(objs); got != "web" {
		t.Errorf("defaultApp = %q, want web", got)
	}
}

func TestProbeLint(t *testing.T) {
	workload := func(kind, name string, probe bool) *manifest.Object {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": kind, "metadata": map[string]any{"name": name}}}
		c := map[string]any{"name": name, "image": "web:1"}
		if probe {
			c["readinessProbe"] = map[string]any{"httpGet": map[string]any{"path": "/", "port": int64(80)}}
		}
		_ = unstructured.SetNestedSlice(u.Object, []any{c}, "spec", "template", "spec", "containers")
		return &manifest.Object{Unstructured: u}
	}
	objs := []*manifest.Object{workload("Deployment", "web", false), workload("StatefulSet", "db", true), workload("DaemonSet", "agent", false), job(nil)}
	s := &State{Objects: objs}
	if err := (&Deploy{}).probeLint(context.Background(), s); err != nil || len(s.warnings) != 1 ||
		!strings.HasPrefix(s.warnings[0], "Deployment/web, DaemonSet/agent have no readinessProbe") {
		t.Errorf("warnings %q, err %v", s.warnings, err)
	}
	err := (&Deploy{RequireProbes: true}).probeLint(context.Background(), &State{Objects: objs})
	if exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("--require-probes: %v, want bad input", err)
	}
	if err := (&Deploy{RequireProbes: true}).probeLint(context.Background(), &State{Objects: objs[1:2]}); err != nil {
		t.Errorf("a workload with probes is refused: %v", err)
	}
}
