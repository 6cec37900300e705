package action

import (
	"context"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/history"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/revision"
)

// History lists what was deployed, by whom and how it ended: for a workload, rollguard's release records
// merged with the workload's own revisions (ReplicaSets or ControllerRevisions), so revisions rollguard
// did not make (kubectl, Argo CD, helm) appear too; for an app, its release records. It reads; the merge
// is internal/history's, the rendering internal/report's (HistoryText).
type History struct {
	Connect   Connector
	Namespace string
	// Object is TYPE/NAME (deployment/web, sts/db, ds/agent) for a workload's history, or an app name
	// (no slash) for its releases.
	Object string
}

// Run reads the history.
func (h *History) Run(ctx context.Context) (*history.Result, error) {
	typ, name, isWorkload := strings.Cut(h.Object, "/")
	if isWorkload && (typ == "" || name == "") || h.Object == "" {
		return nil, exitcode.BadInputf("%q is neither TYPE/NAME nor an app name: pass e.g. deployment/web, or --app web", h.Object)
	}
	if !isWorkload {
		if err := release.ValidateApp(h.Object); err != nil {
			return nil, err
		}
	}
	c, err := h.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ns := h.Namespace
	if ns == "" {
		ns = c.Namespace
	}
	store := release.NewStore(c)
	if !isWorkload {
		records, err := store.List(ctx, ns, h.Object)
		if err != nil {
			return nil, err
		}
		if len(records) == 0 {
			return nil, exitcode.BadInputf("no releases of app %q in namespace %q: check the name and -n/--namespace", h.Object, ns)
		}
		return history.App(ns, h.Object, records), nil
	}

	gvk, err := c.Mapper.KindFor(schema.ParseGroupResource(typ).WithVersion(""))
	if err != nil {
		return nil, exitcode.BadInputf("unknown resource type %q: pass deployment, statefulset or daemonset", typ)
	}
	if gvk.Group != "apps" || (gvk.Kind != "Deployment" && gvk.Kind != "StatefulSet" && gvk.Kind != "DaemonSet") {
		return nil, exitcode.BadInputf("%s is a %s; history covers Deployments, StatefulSets and DaemonSets (or --app NAME for a release)", h.Object, gvk.Kind)
	}
	revs, err := revision.Read(ctx, c, gvk.Kind, ns, name)
	if err != nil {
		return nil, err
	}
	records, err := store.List(ctx, ns, "")
	if err != nil {
		return nil, err
	}
	var mine []*release.Record
	for _, r := range records {
		if history.WorkloadOf(r, gvk.Kind, ns, name) != nil {
			mine = append(mine, r)
		}
	}
	if revs == nil && len(mine) == 0 {
		return nil, exitcode.BadInputf("%s %q not found in namespace %q and no release recorded it: check the name and -n/--namespace", gvk.Kind, name, ns)
	}
	var current int64
	var kept []revision.Revision
	if revs != nil {
		current, kept = revs.Current, revs.Revisions
	}
	return history.Workload(ns, gvk.Kind, name, current, kept, mine), nil
}
