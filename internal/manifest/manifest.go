// Package manifest loads the Kubernetes objects of a release from files, folders, kustomizations or stdin,
// checks them client-side and prepares them for apply (order, images, change cause, namespace). It is pure:
// it never talks to a cluster; the server-side dry-run happens elsewhere.
package manifest

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/exitcode"
)

// StdinPath is the path that means "read manifests from standard input".
const StdinPath = "-"

// stdinName names standard input in sources and errors.
const stdinName = "<stdin>"

// Object is one Kubernetes object of the release and where it came from.
type Object struct {
	*unstructured.Unstructured
	// Source is where the object was defined, for error messages: "deploy/web.yaml:12" (the line its
	// document or List item starts on), "<stdin>:1", or "kustomize:overlays/prod".
	Source string
}

// String names the object for humans: "Deployment prod/web", or "Namespace prod" when cluster-scoped.
func (o *Object) String() string {
	if ns := o.GetNamespace(); ns != "" {
		return o.GetKind() + " " + ns + "/" + o.GetName()
	}
	return o.GetKind() + " " + o.GetName()
}

// groupKind is the object's group and kind; the version does not change an object's identity.
func (o *Object) groupKind() schema.GroupKind {
	return o.GroupVersionKind().GroupKind()
}

type identity struct {
	group, kind, namespace, name string
}

// checkDuplicates refuses two objects with the same group, kind, namespace and name: the second apply
// would silently overwrite the first.
func checkDuplicates(objs []*Object) error {
	seen := make(map[identity]*Object, len(objs))
	for _, o := range objs {
		gk := o.groupKind()
		id := identity{gk.Group, gk.Kind, o.GetNamespace(), o.GetName()}
		if first, ok := seen[id]; ok {
			return exitcode.BadInputf("duplicate object: %s is defined at %s and again at %s; remove one", o, first.Source, o.Source)
		}
		seen[id] = o
	}
	return nil
}
