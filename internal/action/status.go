package action

import (
	"context"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/track"
)

// Status follows a rollout started by anything else (kubectl, Argo CD, a helm upgrade): a drop-in for
// `kubectl rollout status` that fails as soon as the failure is visible.
type Status struct {
	Connect Connector
	Watch
	// Object is TYPE/NAME as kubectl takes it: deployment/web, deploy/web, sts/db, ds/agent.
	Object    string
	Namespace string
}

// Run tracks the object until it is healthy, fails or the timeout passes.
func (s *Status) Run(ctx context.Context) (*report.Result, error) {
	typ, name, ok := strings.Cut(s.Object, "/")
	if !ok || typ == "" || name == "" {
		return nil, exitcode.BadInputf("%q is not TYPE/NAME: pass e.g. deployment/web, statefulset/db or daemonset/agent", s.Object)
	}
	if s.Timeout < 0 {
		return nil, exitcode.BadInputf("--timeout must be positive, got %s", s.Timeout)
	}
	c, err := s.Connect(ctx)
	if err != nil {
		return nil, err
	}
	// The REST mapper from cli-runtime expands kubectl's short names (deploy, sts, ds).
	gvk, err := c.Mapper.KindFor(schema.ParseGroupResource(typ).WithVersion(""))
	if err != nil {
		return nil, exitcode.BadInputf("unknown resource type %q: pass deployment, statefulset or daemonset", typ)
	}
	if !track.Trackable(gvk.Kind) {
		return nil, exitcode.BadInputf("%s is a %s; rollguard tracks Deployments, StatefulSets and DaemonSets", s.Object, gvk.Kind)
	}
	ns := s.Namespace
	if ns == "" {
		ns = c.Namespace
	}
	res, err := c.Resource(gvk, ns)
	if err != nil {
		return nil, err
	}
	if _, err := res.Get(ctx, name, metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, exitcode.BadInputf("%s %q not found in namespace %q: check the name and -n/--namespace", gvk.Kind, name, ns)
		}
		return nil, kube.Classify(err, "reading "+s.Object, c.Server)
	}
	start := time.Now()
	result := &report.Result{Command: "status", Namespace: ns}
	ws, err := s.track(ctx, c, []track.Target{{Kind: gvk.Kind, Namespace: ns, Name: name}}, time.Time{}, start)
	result.FinishedAt = time.Now()
	result.Workloads = ws
	if err != nil {
		return result, err
	}
	result.Outcome = outcomeOf(ws)
	result.Message = summary(ws)
	return result, nil
}
