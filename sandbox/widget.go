package sandbox

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// Widgets are the sandbox's own custom resource, with kwok as their controller (stages/widget.yaml): a
// release that carries a Widget is followed the way rollguard follows cert-manager Certificates or
// ExternalSecrets, by status.observedGeneration and status.conditions, written by something other than the
// test. spec.readyAfter (a Go duration, default 2s) is how long until Ready; spec.notReadyReason (default
// Progressing) is the Ready=False reason meanwhile; spec.failWith makes it Stalled with that message.

// WidgetGVR is the resource of the sandbox's Widget custom resource.
var WidgetGVR = schema.GroupVersionResource{Group: "sandbox.rollguard.dev", Version: "v1", Resource: "widgets"}

//go:embed widget-crd.yaml
var widgetCRD []byte

// createWidgetCRD installs the Widget CRD and waits until it is served: kwok's Widget stages need the type to
// exist when kwok starts.
func (c *Cluster) createWidgetCRD(ctx context.Context) error {
	var obj unstructured.Unstructured
	if err := yaml.Unmarshal(widgetCRD, &obj.Object); err != nil {
		return fmt.Errorf("sandbox: reading the Widget CRD: %w", err)
	}
	dyn, err := dynamic.NewForConfig(c.rest)
	if err != nil {
		return fmt.Errorf("sandbox: creating client: %w", err)
	}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, &obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("sandbox: creating the Widget CRD: %w", err)
	}
	// Served, and in the OpenAPI v3 document kwok reads at start (published a moment after).
	path := "apis/" + WidgetGVR.Group + "/" + WidgetGVR.Version
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if _, err := dyn.Resource(WidgetGVR).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
			return false, nil
		}
		raw, err := c.client.Discovery().RESTClient().Get().AbsPath("/openapi/v3").DoRaw(ctx)
		if err != nil {
			return false, nil
		}
		var doc struct {
			Paths map[string]json.RawMessage `json:"paths"`
		}
		return json.Unmarshal(raw, &doc) == nil && doc.Paths[path] != nil, nil
	})
	if err != nil {
		return fmt.Errorf("sandbox: the Widget CRD was not served within 30s; see %s", c.Logs(APIServer))
	}
	return nil
}
