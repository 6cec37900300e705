package action

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/notify"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/report"
)

// releaseEvent is a notification about rec; result, when set, supplies the failed workload's evidence.
func releaseEvent(kind notify.Kind, rec *release.Record, result *report.Result, cluster string) notify.Event {
	e := notify.Event{
		Kind: kind, App: rec.App, Environment: rec.Environment, Cluster: cluster, Namespace: rec.Namespace,
		Release: rec.ID, Reason: rec.Reason, Message: rec.Message, DeployedBy: rec.DeployedBy, ChangeCause: rec.ChangeCause,
	}
	if result == nil {
		return e
	}
	for _, w := range result.Workloads {
		if w.Status != diagnose.Failed {
			continue
		}
		e.Workload, e.Fix = w.ID(), w.Fix
		var lines []string
		for _, ev := range w.Evidence {
			lines = append(lines, ev.Object+": "+ev.Text)
		}
		e.Evidence = notify.Summarize(lines)
		break
	}
	return e
}

// approvalEvent says a failed release's rollback waits for a decision, with the commands that give it
// and the release's page in the dashboard. deadline is zero when no run waits (a held release).
func approvalEvent(rec *release.Record, result *report.Result, cluster, dashboard string, deadline time.Time) notify.Event {
	e := releaseEvent(notify.ApprovalNeeded, rec, result, cluster)
	approve, reject := notify.Commands(rec.ID, rec.Namespace)
	e.Approval = &notify.Approval{ApproveCommand: approve, RejectCommand: reject, Deadline: deadline, Dashboard: DashboardLink(dashboard, rec.Namespace, rec.App, rec.ID)}
	return e
}

// DashboardLink is a release's place in `rollguard dashboard` served at base; "" without a base.
func DashboardLink(base, ns, app, id string) string {
	if base == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + "/apps/" + url.PathEscape(ns) + "/" + url.PathEscape(app) + "#" + url.PathEscape(id)
}

// notifyRollback tells people how a rollback ended. An interrupted run (cancelled) sends nothing: the
// next run finishes the rollback and tells.
func (w Watch) notifyRollback(ctx context.Context, rec *release.Record, rb *report.Rollback, cluster string, err error) {
	if w.Notify == nil || errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return
	}
	healthy := err == nil && rb != nil && rb.Outcome == report.Succeeded
	kind := notify.RollbackFailed
	if healthy {
		kind = notify.RolledBack
	}
	e := releaseEvent(kind, rec, nil, cluster)
	r := &notify.Rollback{Healthy: healthy}
	if rb != nil {
		r.ToRelease, r.Message = rb.ToRelease, rb.Message
	}
	if err != nil && r.Message == "" {
		r.Message = err.Error()
	}
	if a := rec.Approval; a != nil && a.Decision == release.Approved {
		r.By = a.By
	}
	e.Rollback = r
	w.Notify.Notify(e)
}
