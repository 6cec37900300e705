// Package kube is rollguard's one boundary with the Kubernetes API: connecting, mapping kinds to resources,
// dry-running and applying objects, and turning API errors into errors a pipeline can act on.
// Everything above it (actions, tracking) goes through it; the diagnosis core never does.
package kube

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rollguard/rollguard/internal/exitcode"
)

// FieldManager is the server-side apply field manager that owns the fields rollguard sets.
const FieldManager = "rollguard"

// Client is a connection to one cluster.
type Client struct {
	Config    *rest.Config
	Typed     kubernetes.Interface
	Dynamic   dynamic.Interface
	Mapper    meta.RESTMapper
	Namespace string // the namespace from --namespace or the kubeconfig context
	Server    string
	// Concurrency bounds the requests for a release's objects in flight at once (ForEach); 0 means
	// DefaultConcurrency.
	Concurrency int
}

// Client-side rate limits, used when the kubeconfig sets none. client-go's defaults (5 qps, burst 10)
// would make a release of 1,000 objects, which takes several requests per object (dry-run, pod preflight,
// previous state, apply), wait minutes on the client for no benefit; kubectl itself lifts them for
// discovery (50 qps, burst 300) and gets a fresh limiter per resource when applying. The bound on requests
// in flight (Concurrency) is what keeps rollguard polite; the API server's priority and fairness queues
// protect it, and a 429 it answers is retried by client-go after its Retry-After.
const (
	DefaultQPS   = 500
	DefaultBurst = 1000
)

// Connect builds a client from kubectl-style flags and checks the cluster answers with our credentials, so
// an unreachable cluster or expired credentials are reported (exit 4) before anything else happens.
func Connect(ctx context.Context, getter genericclioptions.RESTClientGetter) (*Client, error) {
	cfg, err := getter.ToRESTConfig()
	if err != nil {
		return nil, classifyConfigError(err)
	}
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = DefaultQPS, DefaultBurst
	}
	ns, _, err := getter.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, classifyConfigError(err)
	}
	typed, dyn, err := clientsFor(cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{Config: cfg, Typed: typed, Dynamic: dyn, Namespace: ns, Server: cfg.Host}
	if err := c.Ping(ctx); err != nil {
		return nil, err
	}
	mapper, err := getter.ToRESTMapper()
	if err != nil {
		return nil, Classify(err, "discovering the cluster's API resources", c.Server)
	}
	c.Mapper = mapper
	return c, nil
}

// Ping asks the API server for its version with a short deadline.
func (c *Client) Ping(ctx context.Context) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err := c.Typed.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Error()
	if err != nil && parent.Err() != nil {
		// Interrupted (Ctrl-C) while connecting: that says nothing about the cluster.
		return fmt.Errorf("contacting the cluster: %w", context.Cause(parent))
	}
	if err != nil && ctx.Err() != nil {
		// No answer at all within the deadline: down, unreachable, or holding this client back (API
		// priority and fairness queues requests rather than refusing them).
		return exitcode.Unreachablef("contacting the cluster: %s did not answer within 15s (unreachable, overloaded, or throttling this client); check the network, --kubeconfig and --context", c.Server)
	}
	if err != nil {
		return Classify(err, "contacting the cluster", c.Server)
	}
	return nil
}

// Mapping resolves a kind to its resource. An unknown kind is bad input: the cluster does not serve it.
func (c *Client) Mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return nil, &UnknownKindError{GVK: gvk}
		}
		return nil, Classify(err, fmt.Sprintf("looking up kind %s", gvk.Kind), c.Server)
	}
	return m, nil
}

// Namespaced reports whether a kind is namespaced.
func (c *Client) Namespaced(gvk schema.GroupVersionKind) (bool, error) {
	m, err := c.Mapping(gvk)
	if err != nil {
		return false, err
	}
	return m.Scope.Name() == meta.RESTScopeNameNamespace, nil
}

// Resource is the dynamic client for one object's resource in its namespace.
func (c *Client) Resource(gvk schema.GroupVersionKind, namespace string) (dynamic.ResourceInterface, error) {
	m, err := c.Mapping(gvk)
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.Dynamic.Resource(m.Resource).Namespace(namespace), nil
	}
	return c.Dynamic.Resource(m.Resource), nil
}

// UnknownKindError says the cluster serves no resource for a kind.
type UnknownKindError struct{ GVK schema.GroupVersionKind }

func (e *UnknownKindError) Error() string {
	gv := e.GVK.GroupVersion().String()
	return fmt.Sprintf("unknown kind %q in %s: the cluster does not serve it; check apiVersion and kind, or install its CRD first", e.GVK.Kind, gv)
}

// PreviousLog returns the last lines of a container's previous run, or "" when the API cannot give them
// (the node is unreachable, logs are gone, or we lack pods/log permission): logs enrich a verdict, they
// never decide it.
func (c *Client) PreviousLog(ctx context.Context, namespace, pod, container string, lines int64) string {
	return c.log(ctx, namespace, pod, container, lines, true)
}

// CurrentLog is PreviousLog for a container's current run: what a running container has written so far,
// or the last lines of one that ran to its end and was not restarted (a Job's pod, restartPolicy Never).
func (c *Client) CurrentLog(ctx context.Context, namespace, pod, container string, lines int64) string {
	return c.log(ctx, namespace, pod, container, lines, false)
}

func (c *Client) log(ctx context.Context, namespace, pod, container string, lines int64, previous bool) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	limit := int64(16 << 10)
	b, err := c.Typed.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{
		Container: container, Previous: previous, TailLines: &lines, LimitBytes: &limit,
	}).DoRaw(ctx)
	if err != nil {
		return ""
	}
	return string(b)
}
