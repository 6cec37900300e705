package action

import (
	"context"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/track"
)

// workload is a workload named on the command line (TYPE/NAME), read from the cluster.
type workload struct {
	target track.Target
	gvk    schema.GroupVersionKind
	live   *unstructured.Unstructured
}

// resolveWorkload reads TYPE/NAME the way kubectl takes it (deployment/web, deploy/web, sts/db, ds/agent).
func resolveWorkload(ctx context.Context, c *kube.Client, object, namespace string) (*workload, error) {
	typ, name, ok := strings.Cut(object, "/")
	if !ok || typ == "" || name == "" {
		return nil, exitcode.BadInputf("%q is not TYPE/NAME: pass e.g. deployment/web, statefulset/db or daemonset/agent", object)
	}
	// The REST mapper from cli-runtime expands kubectl's short names (deploy, sts, ds).
	gvk, err := c.Mapper.KindFor(schema.ParseGroupResource(typ).WithVersion(""))
	if err != nil {
		return nil, exitcode.BadInputf("unknown resource type %q: pass deployment, statefulset or daemonset", typ)
	}
	if !track.Trackable(gvk.GroupKind()) {
		return nil, exitcode.BadInputf("%s is a %s; rollguard follows Deployments, StatefulSets, DaemonSets and Jobs", object, gvk.Kind)
	}
	if namespace == "" {
		namespace = c.Namespace
	}
	res, err := c.Resource(gvk, namespace)
	if err != nil {
		return nil, err
	}
	live, err := res.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, exitcode.BadInputf("%s %q not found in namespace %q: check the name and -n/--namespace", gvk.Kind, name, namespace)
	}
	if err != nil {
		return nil, kube.Classify(err, "reading "+object, c.Server)
	}
	return &workload{target: track.Target{Kind: gvk.Kind, Namespace: namespace, Name: name}, gvk: gvk, live: live}, nil
}
