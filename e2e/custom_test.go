package e2e

import (
	"strings"
	"testing"
)

// widget is the sandbox's Widget custom resource, whose controller is kwok (sandbox/stages/widget.yaml): it
// writes status.observedGeneration and status.conditions the kstatus way, as cert-manager or
// external-secrets do, shaped by the spec (readyAfter, notReadyReason, failWith).
func widget(name, annotations, spec string) string {
	return "apiVersion: sandbox.rollguard.dev/v1\nkind: Widget\nmetadata:\n  name: " + name + "\n" + annotations + "spec:\n" + spec
}

// TestCustomResourcesFollowed: a custom resource in a release is followed the kstatus way, with its
// controller (kwok) writing the status. One that turns Ready is healthy; one that says Ready=False with an
// error-like reason for a few seconds and then turns Ready is healthy too (the counter-scenario: its
// controller retries); one that stalls fails the release with the controller's words; one annotated
// rollguard.dev/track: "false" is not waited for, even stalled.
func TestCustomResourcesFollowed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, annotations, spec string
		code                    int
		status, reason          string
	}{
		{name: "turns ready", spec: "  readyAfter: 2s\n", code: 0, status: "healthy"},
		{name: "looks failing, then ready", spec: "  readyAfter: 5s\n  notReadyReason: SecretSyncedError\n", code: 0, status: "healthy"},
		{name: "stalls", spec: "  failWith: size 1 is below the minimum of 3\n", code: 2, status: "failed", reason: "CustomResourceFailed"},
		{name: "untracked", annotations: "  annotations:\n    rollguard.dev/track: \"false\"\n", spec: "  failWith: never ready\n", code: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			r := rollguard(t, app{}.yaml()+"---\n"+widget("w", tc.annotations, tc.spec),
				"deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "2m", "--on-failure", "none")
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", r.code, tc.code, r.stdout, r.stderr)
			}
			var found bool
			for _, w := range parseReport(t, r).Workloads {
				if w.Kind != "Widget" {
					continue
				}
				found = true
				if w.Status != tc.status || w.Reason != tc.reason {
					t.Fatalf("Widget: %s %s (%s), want %s %s", w.Status, w.Reason, w.Message, tc.status, tc.reason)
				}
				if tc.reason != "" && !strings.Contains(w.Message, "size 1 is below the minimum of 3") {
					t.Errorf("message %q lacks the controller's words", w.Message)
				}
			}
			if found != (tc.status != "") {
				t.Errorf("Widget in the report: %t, want %t", found, tc.status != "")
			}
		})
	}
}
