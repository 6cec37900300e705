package action

import (
	"context"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/rollguard/rollguard/internal/config"
	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/history"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/release"
)

// Overview is what `rollguard dashboard` shows first: every app whose releases the caller may read, with
// its current release, health, images and digests (read exactly as `rollguard envs` reads an
// environment), the environments of rollguard.yaml with their drift, and the releases that wait for a
// decision. The caller's own credentials decide what is visible.
type Overview struct {
	Connect Connector
	// Namespace limits the overview to one namespace; "" means every namespace the caller may list
	// release records in (or, when listing across namespaces is forbidden, the context's namespace).
	Namespace string
	// Envs, when set, reads rollguard.yaml's environments too (promotion order and drift).
	Envs *Envs
}

// AppState is one app in one namespace: its newest release as `rollguard envs` reports an environment.
type AppState struct {
	App string `json:"app"`
	EnvState
	// Pending are the app's releases waiting for a decision, newest first.
	Pending []Pending `json:"pending,omitempty"`
}

// Pending is a failed release whose rollback waits for a decision.
type Pending struct {
	Release     string    `json:"release"`
	App         string    `json:"app"`
	Namespace   string    `json:"namespace"`
	Environment string    `json:"environment,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Message     string    `json:"message,omitempty"`
	DeployedBy  string    `json:"deployedBy,omitempty"`
	RequestedAt time.Time `json:"requestedAt,omitzero"`
}

// OverviewResult is the overview.
type OverviewResult struct {
	// Scope is the namespace read, or "" for all namespaces.
	Scope string `json:"scope"`
	// Narrowed says listing every namespace was forbidden, so only Scope was read.
	Narrowed bool       `json:"narrowed,omitempty"`
	Apps     []AppState `json:"apps"`
	// Environments are rollguard.yaml's environments, when a config was given.
	Environments []EnvState `json:"environments,omitempty"`
	Pending      []Pending  `json:"pending"`
}

// Run reads the overview.
func (o *Overview) Run(ctx context.Context) (*OverviewResult, error) {
	c, err := o.Connect(ctx)
	if err != nil {
		return nil, err
	}
	res := &OverviewResult{Scope: o.Namespace}
	store := release.NewStore(c)
	records, err := store.List(ctx, o.Namespace, "")
	if o.Namespace == "" && isForbidden(err) {
		// Most people may read their own namespace only: show it rather than nothing.
		res.Scope, res.Narrowed = c.Namespace, true
		records, err = store.List(ctx, c.Namespace, "")
	}
	if err != nil {
		return nil, err
	}
	type key struct{ ns, app string }
	newest := map[key]*release.Record{}
	pending := map[key][]Pending{}
	for _, r := range records {
		k := key{r.Namespace, r.App}
		if cur, ok := newest[k]; !ok || r.Revision > cur.Revision {
			newest[k] = r
		}
		if r.Outcome == release.PendingApproval && (r.Approval == nil || r.Approval.Decision == "") {
			p := Pending{Release: r.ID, App: r.App, Namespace: r.Namespace, Environment: r.Environment, Reason: r.Reason, Message: r.Message, DeployedBy: r.DeployedBy}
			if r.Approval != nil {
				p.RequestedAt = r.Approval.RequestedAt
			}
			pending[k] = append(pending[k], p)
			res.Pending = append(res.Pending, p)
		}
	}
	for k := range newest {
		name := newest[k].Environment
		if name == "" {
			name = k.ns
		}
		// One environment per app and namespace, read with the caller's connection: the same reading
		// (health, images, digests) `rollguard envs` does.
		e := &Envs{Config: &config.Config{App: k.app}, Connect: func(context.Context, *config.Environment) (*kube.Client, error) { return c, nil }}
		if o.Envs != nil {
			e.Resolve = o.Envs.Resolve
		}
		st, err := e.read(ctx, &config.Environment{Name: name, Namespace: k.ns, Cluster: c.Server})
		if err != nil {
			st.Health, st.Error = "unknown", err.Error()
		}
		res.Apps = append(res.Apps, AppState{App: k.app, EnvState: st, Pending: pending[k]})
	}
	sort.Slice(res.Apps, func(i, j int) bool {
		if res.Apps[i].App != res.Apps[j].App {
			return res.Apps[i].App < res.Apps[j].App
		}
		return res.Apps[i].Namespace < res.Apps[j].Namespace
	})
	sort.SliceStable(res.Pending, func(i, j int) bool { return res.Pending[i].RequestedAt.After(res.Pending[j].RequestedAt) })
	if o.Envs != nil {
		// An unreadable environment is reported in its state; the overview still shows the rest.
		res.Environments, _ = o.Envs.Run(ctx)
	}
	return res, nil
}

// isForbidden recognises an RBAC refusal. kube.Classify keeps the API server's words but not the error
// value ("listing release records: forbidden: ..."), so the text is what is left to check.
func isForbidden(err error) bool {
	return err != nil && (apierrors.IsForbidden(err) || strings.Contains(err.Error(), ": forbidden: "))
}

// Timeline is an app's release history for the dashboard: what `rollguard history --app` reads
// (History), with what only the records hold besides — who decided a held rollback, and each failed
// workload's message, evidence and fix.
type Timeline struct {
	Connect   Connector
	Namespace string
	App       string
}

// TimelineEntry is one release of the timeline.
type TimelineEntry struct {
	history.Entry
	Approval *release.Approval `json:"approval,omitempty"`
	// Failures are the release's failed workloads with their explanation.
	Failures []release.WorkloadState `json:"failures,omitempty"`
}

// Run reads the timeline, newest first.
func (t *Timeline) Run(ctx context.Context) ([]TimelineEntry, error) {
	h, err := (&History{Connect: t.Connect, Namespace: t.Namespace, Object: t.App}).Run(ctx)
	if err != nil {
		return nil, err
	}
	c, err := t.Connect(ctx)
	if err != nil {
		return nil, err
	}
	records, err := release.NewStore(c).List(ctx, h.Namespace, t.App)
	if err != nil {
		return nil, err
	}
	byID := map[string]*release.Record{}
	for _, r := range records {
		byID[r.ID] = r
	}
	out := make([]TimelineEntry, 0, len(h.Entries))
	for _, e := range h.Entries {
		te := TimelineEntry{Entry: e}
		if r := byID[e.Release]; r != nil {
			te.Approval = r.Approval
			for _, w := range r.Workloads {
				if w.Status == diagnose.Failed {
					te.Failures = append(te.Failures, w)
				}
			}
		}
		out = append(out, te)
	}
	return out, nil
}
