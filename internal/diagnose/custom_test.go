package diagnose

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Custom resources as their controllers write them (cert-manager, External Secrets, Argo Rollouts, a
// controller without conditions); the sandbox runs none of these controllers, so the objects are written
// from their documented status.
func TestCustomResources(t *testing.T) {
	started := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	const certReady = `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web-tls, generation: 2}
status:
  conditions:
  - {type: Ready, status: "True", reason: Ready, message: Certificate is up to date and has not expired, observedGeneration: 2, lastTransitionTime: "2026-11-26T12:00:03Z"}
`
	tests := []struct {
		name     string
		obj      string
		after    time.Duration // Now = started + after
		deadline bool
		status   Status
		reason   Reason
		says     string
	}{
		{name: "Ready=True is healthy", obj: certReady, status: Healthy},
		{name: "Ready=True of an older generation is not", obj: strings.Replace(certReady, "generation: 2}", "generation: 3}", 1),
			status: Progressing, says: "not Ready yet"},
		{name: "a controller that has not observed the spec", obj: `apiVersion: example.com/v1
kind: Widget
metadata: {name: w, generation: 4}
status: {observedGeneration: 3}
`, status: Progressing, says: "observe generation 4"},
		{name: "Stalled fails at once", obj: `apiVersion: example.com/v1
kind: Widget
metadata: {name: w, generation: 1}
status:
  conditions:
  - {type: Stalled, status: "True", reason: InvalidSpec, message: "spec.size must be positive", lastTransitionTime: "2026-11-26T12:00:01Z"}
`, status: Failed, reason: CustomResourceFailed, says: "Stalled=True InvalidSpec: spec.size must be positive"},
		{name: "an error reason waits for the controller to retry", obj: `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: db, generation: 1}
status:
  conditions:
  - {type: Ready, status: "False", reason: SecretSyncedError, message: "could not get secret data from provider", lastTransitionTime: "2026-11-26T12:00:01Z"}
`, after: 10 * time.Second, status: Progressing, says: "SecretSyncedError"},
		{name: "an error reason that persists fails", obj: `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: db, generation: 1}
status:
  conditions:
  - {type: Ready, status: "False", reason: SecretSyncedError, message: "could not get secret data from provider", lastTransitionTime: "2026-11-26T12:00:01Z"}
`, after: 40 * time.Second, status: Failed, reason: CustomResourceFailed, says: "could not get secret data from provider"},
		{name: "an aborted Argo Rollout fails", obj: `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web, generation: 5}
status:
  observedGeneration: "5"
  conditions:
  - {type: Progressing, status: "False", reason: RolloutAborted, message: "Rollout aborted update to revision 5", lastTransitionTime: "2026-11-26T12:00:20Z"}
  - {type: Available, status: "True", reason: AvailableReason, message: "Rollout has minimum availability"}
`, status: Failed, reason: CustomResourceFailed, says: "RolloutAborted"},
		{name: "Reconciling is progressing", obj: `apiVersion: example.com/v1
kind: Widget
metadata: {name: w, generation: 1}
status:
  conditions:
  - {type: Reconciling, status: "True", reason: Provisioning, message: "creating the bucket"}
`, status: Progressing, says: "reconciling"},
		{name: "pending past the deadline times out", obj: `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web-tls, generation: 1}
status:
  conditions:
  - {type: Ready, status: "False", reason: Issuing, message: "Issuing certificate as Secret does not exist"}
`, deadline: true, status: Failed, reason: Timeout, says: "Issuing certificate"},
		{name: "no status yet: its controller is given a moment", obj: `apiVersion: example.com/v1
kind: Widget
metadata: {name: w, generation: 1}
spec: {size: 1}
`, after: 2 * time.Second, status: Progressing, says: "write its status"},
		{name: "no status at all is healthy after that moment", obj: `apiVersion: example.com/v1
kind: Widget
metadata: {name: w, generation: 1}
spec: {size: 1}
`, after: 6 * time.Second, status: Healthy},
		{name: "a status without conditions is healthy", obj: `apiVersion: example.com/v1
kind: Widget
metadata: {name: w, generation: 1}
status: {phase: Running}
`, status: Healthy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var u unstructured.Unstructured
			raw, err := yaml.YAMLToJSON([]byte(tc.obj))
			if err != nil {
				t.Fatal(err)
			}
			if err := u.UnmarshalJSON(raw); err != nil {
				t.Fatal(err)
			}
			in := Input{Workload: &u, Started: started, Now: started.Add(tc.after)}
			if tc.deadline {
				in.Deadline = in.Now
			}
			v := Diagnose(in, DefaultThresholds())
			if v.Status != tc.status || v.Reason != tc.reason || !strings.Contains(v.Message, tc.says) {
				t.Fatalf("got %s/%s %q, want %s/%s saying %q", v.Status, v.Reason, v.Message, tc.status, tc.reason, tc.says)
			}
			if v.Status == Failed && (v.Fix == "" || v.Workload == "") {
				t.Errorf("failed verdict lacks fix or workload: %+v", v)
			}
		})
	}
}
