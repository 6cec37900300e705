package action

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/manifest"
)

// probeLint finds the Deployments, StatefulSets and DaemonSets whose containers have no readinessProbe:
// their pods count as ready the moment they start, so rollguard cannot see a release that starts but does
// not serve. With RequireProbes that is bad input (exit 3, nothing changed); otherwise a warning, shown once
// the release proceeds (preDeploy) so that bad input stays one line.
func (d *Deploy) probeLint(_ context.Context, s *State) error {
	var missing []string
	for _, o := range s.Objects {
		if name := withoutReadinessProbe(o); name != "" {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	what := fmt.Sprintf("%s %s no readinessProbe", strings.Join(missing, ", "), map[bool]string{true: "has", false: "have"}[len(missing) == 1])
	if d.RequireProbes {
		return exitcode.BadInputf("%s, and --require-probes is set: add a readinessProbe to every container (or drop --require-probes); nothing was changed", what)
	}
	s.warnings = append(s.warnings, what+": rollguard cannot see readiness failures in it (its pods count as ready once started); add one, or pass --require-probes to refuse such releases")
	return nil
}

// withoutReadinessProbe is "Kind/name" of a workload with a container lacking a readinessProbe, or "".
func withoutReadinessProbe(o *manifest.Object) string {
	switch o.GetKind() {
	case "Deployment", "StatefulSet", "DaemonSet":
	default:
		return ""
	}
	if o.GroupVersionKind().Group != "apps" {
		return ""
	}
	containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		m, _ := c.(map[string]any)
		if _, ok := m["readinessProbe"]; !ok {
			return o.GetKind() + "/" + o.GetName()
		}
	}
	return ""
}
