package e2e

// PodRejected's counter-scenario: a mutating webhook (a sidecar injector, say, during its own upgrade)
// returns a patch the API server cannot apply, so every new pod is refused with an error rollguard cannot
// read ("Internal error occurred: ..."); a few seconds later the injector works again. A real
// MutatingWebhookConfiguration, scoped to the test's namespace, served by the test.

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestCreationErrorThatStops: pods refused with an unreadable creation error (PodRejected, which waits
// --quota-grace since it may pass on a retry) are created once the error stops, and the release is reported
// healthy, not rolled back. The failing side: the error never stops and the release fails as PodRejected.
func TestCreationErrorThatStops(t *testing.T) {
	t.Parallel()
	v2 := app{image: "registry.example.com/web:2.0.0"}
	t.Run("the injector works again", func(t *testing.T) {
		t.Parallel()
		ns := namespaceWithV1(t)
		deployThroughRefusal(t, ns, v2, "Internal error occurred", brokenInjector(t, ns))
	})
	t.Run("the injector stays broken", func(t *testing.T) {
		t.Parallel()
		ns := namespaceWithV1(t)
		brokenInjector(t, ns)
		r := rollguard(t, v2.yaml(), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "2m", "--quota-grace", "5s", "--on-failure", "none")
		wantFailure(t, r, 2, "PodRejected", "Internal error occurred", "FailedCreate")
	})
}

// brokenInjector registers a mutating webhook for pods created in ns whose patch cannot be applied (a JSON
// patch test that fails); repair makes it answer with no patch.
func brokenInjector(t *testing.T, ns string) (repair func()) {
	t.Helper()
	var fixed atomic.Bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		if !fixed.Load() {
			pt := admissionv1.PatchTypeJSONPatch
			resp.PatchType, resp.Patch = &pt, []byte(`[{"op":"test","path":"/metadata/namespace","value":"not-this-one"}]`)
		}
		review.Response, review.Request = resp, nil
		_ = json.NewEncoder(w).Encode(review)
	}))
	url := srv.URL + "/mutate"
	fail, none := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone
	timeout := int32(5)
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-injector-" + ns},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         fmt.Sprintf("injector.%s.e2e.rollguard.dev", ns),
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})},
			Rules: []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			FailurePolicy: &fail, SideEffects: &none, TimeoutSeconds: &timeout, AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
		}},
	}
	whs := cluster.Client().AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := whs.Create(context.Background(), cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = whs.Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
		srv.Close()
	})
	return func() { fixed.Store(true) }
}
