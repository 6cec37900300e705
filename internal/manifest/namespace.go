package manifest

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/exitcode"
)

// DefaultNamespace puts namespaced objects that name no namespace into ns ("default" when empty) and
// clears the namespace of cluster-scoped objects, where it means nothing, so that identities compare
// right. With enforce (the user passed --namespace explicitly), an object naming another namespace is a
// bad-input error, like kubectl. namespaced tells the scope of a kind (a REST mapper in production); its
// errors, such as an unknown kind, are returned wrapped with the object, for the caller to classify.
// Duplicates that only show once namespaces are filled in are refused.
func DefaultNamespace(objs []*Object, ns string, enforce bool, namespaced func(schema.GroupVersionKind) (bool, error)) error {
	if ns == "" {
		ns = "default"
	}
	for _, o := range objs {
		isNamespaced, err := namespaced(o.GroupVersionKind())
		if err != nil {
			return fmt.Errorf("%s: %s: %w", o.Source, o, err)
		}
		cur := o.GetNamespace()
		switch {
		case !isNamespaced:
			if cur != "" {
				o.SetNamespace("")
			}
		case cur == "":
			o.SetNamespace(ns)
		case enforce && cur != ns:
			return exitcode.BadInputf("%s: %s is in namespace %q but --namespace %s was given; remove metadata.namespace from the manifest or pass --namespace %s", o.Source, o, cur, ns, cur)
		}
	}
	return checkDuplicates(objs)
}
