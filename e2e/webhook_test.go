package e2e

// An admission webhook that cannot be called: a real ValidatingWebhookConfiguration in the sandbox pointing
// at a loopback port where nothing listens (as when a policy engine's pods are down). It is scoped to the
// test's namespace, so the package's other tests never meet it.

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// downWebhook registers a failing-closed webhook for creating resources (e.g. "pods") in ns, served (once
// serve is called) on a loopback port where nothing listens yet. serve starts an HTTPS server there that
// allows every request.
func downWebhook(t *testing.T, ns, resource string) (name string, serve func()) {
	t.Helper()
	// httptest's TLS servers all use one certificate (127.0.0.1 among its names): its CA bundle is known
	// before the real server starts.
	probe := httptest.NewTLSServer(http.NotFoundHandler())
	caBundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: probe.Certificate().Raw})
	probe.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there until serve
	name = fmt.Sprintf("%s.%s.e2e.rollguard.dev", resource, ns)
	url := "https://" + addr + "/validate"
	cfg := webhookConfig("e2e-"+ns+"-"+resource, name, ns, resource, url, caBundle, 2)
	ctx := context.Background()
	whs := cluster.Client().AdmissionregistrationV1().ValidatingWebhookConfigurations()
	if _, err := whs.Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var srv *httptest.Server
	t.Cleanup(func() {
		_ = whs.Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
		if srv != nil {
			srv.Close()
		}
	})
	return name, func() {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("webhook: listening on %s again: %v", addr, err)
			return
		}
		srv = httptest.NewUnstartedServer(http.HandlerFunc(allowAll))
		srv.Listener.Close()
		srv.Listener = l
		srv.StartTLS()
	}
}

// allowAll answers every AdmissionReview with allowed: true.
func allowAll(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	review.Request = nil
	_ = json.NewEncoder(w).Encode(review)
}

// TestUnreachableAdmissionWebhook: a webhook that cannot be called refuses every new pod. rollguard names it
// (AdmissionDenied, "could not be called") once the refusal has lasted --quota-grace, and rolls back to the
// release that still runs; nothing else is harmed. Its counter-scenario: the webhook comes back within the
// grace, the pods are created and the release is healthy, not rolled back. A webhook on Deployments
// themselves stops the release before anything is applied.
func TestUnreachableAdmissionWebhook(t *testing.T) {
	t.Parallel()
	v2 := app{image: "registry.example.com/web:2.0.0"}
	t.Run("pods refused until the grace ends", func(t *testing.T) {
		t.Parallel()
		ns := namespaceWithV1(t)
		name, _ := downWebhook(t, ns, "pods")
		r := rollguard(t, v2.yaml(), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "2m", "--quota-grace", "5s")
		rep := wantFailure(t, r, 1, "AdmissionDenied", "admission webhook \""+name+"\" could not be called", "connection refused")
		if rep.Outcome != "rolled_back" {
			t.Errorf("outcome %q, want rolled_back", rep.Outcome)
		}
		d, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil || d.Spec.Template.Spec.Containers[0].Image != "registry.example.com/web:1.0.0" || d.Status.ReadyReplicas != 3 {
			t.Errorf("deployment after the rollback: %v; want v1 with 3 ready replicas", err)
		}
	})
	t.Run("webhook back within the grace", func(t *testing.T) {
		t.Parallel()
		ns := namespaceWithV1(t)
		_, serve := downWebhook(t, ns, "pods")
		deployThroughRefusal(t, ns, v2, "failed calling webhook", serve)
	})
	t.Run("webhook on deployments: nothing applied", func(t *testing.T) {
		t.Parallel()
		ns := namespaceWithV1(t)
		name, _ := downWebhook(t, ns, "deployments")
		r := rollguard(t, v2.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "1m")
		if r.code != 3 || !strings.Contains(r.stderr, name) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 2 {
			t.Errorf("exit %d, stderr:\n%s\nwant exit 3 and a short message naming webhook %s", r.code, r.stderr, name)
		}
		d, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil || d.Spec.Template.Spec.Containers[0].Image != "registry.example.com/web:1.0.0" {
			t.Errorf("deployment changed (%v); want v1 untouched", err)
		}
	})
}

// namespaceWithV1 is a fresh namespace where a healthy first release runs.
func namespaceWithV1(t *testing.T) string {
	t.Helper()
	ns := cluster.Namespace(t)
	if r := rollguard(t, app{}.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "1m"); r.code != 0 {
		t.Fatalf("v1: exit %d\n%s", r.code, r.stderr)
	}
	return ns
}

// waitFailedCreate waits for a FailedCreate event in ns whose message contains msg.
func waitFailedCreate(t *testing.T, ns, msg string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		evs, err := cluster.Client().CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreate"})
		if err != nil {
			return false, nil
		}
		for _, e := range evs.Items {
			if strings.Contains(e.Message, msg) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no FailedCreate %q in %s", msg, ns)
	}
}

// silentWebhook registers a webhook for creating and updating resource in ns whose server takes every
// request and answers none (until the API server gives up after 30 s, or the test ends); arrived receives
// once a request is waiting on it.
func silentWebhook(t *testing.T, ns, resource string) (arrived <-chan struct{}) {
	t.Helper()
	got := make(chan struct{}, 1)
	done := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	caBundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	url := srv.URL + "/validate"
	cfg := webhookConfig("e2e-silent-"+ns+"-"+resource, fmt.Sprintf("silent.%s.%s.e2e.rollguard.dev", resource, ns), ns, resource, url, caBundle, 30)
	whs := cluster.Client().AdmissionregistrationV1().ValidatingWebhookConfigurations()
	if _, err := whs.Create(context.Background(), cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = whs.Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
		close(done)
		srv.Close()
	})
	return got
}

// webhookConfig is a failing-closed validating webhook named name for creating and updating resource in
// namespace ns only, called at url (served with caBundle's certificate) with a timeout of timeout seconds.
func webhookConfig(config, name, ns, resource, url string, caBundle []byte, timeout int32) *admissionregistrationv1.ValidatingWebhookConfiguration {
	fail, none := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: config},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    name,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}, Rule: admissionregistrationv1.Rule{APIGroups: []string{"*"}, APIVersions: []string{"*"}, Resources: []string{resource}}}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
		}},
	}
}
