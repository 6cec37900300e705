package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/registry"
	"github.com/rollguard/rollguard/internal/release"
)

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"ago":     ago,
		"stamp":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"iso":     func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"outcome": func(o string) string { return release.Outcome(o).Text() },
		"badge":   badge,
		"digest":  registry.ShortDigest,
		"appURL":  appURL,
		"join":    strings.Join,
	}
	out := map[string]*template.Template{}
	for _, page := range []string{"overview", "app"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/parts.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("parsing the %s page: %w", page, err)
		}
		out[page] = t
	}
	return out, nil
}

// badge is the CSS class of an outcome or health word.
func badge(s string) string {
	switch s {
	case "succeeded", "healthy", "rolled_back":
		return "ok"
	case "failed", "rollback_failed", "unhealthy", "rejected":
		return "bad"
	case "pending_approval":
		return "wait"
	case "applying", "tracking", "rolling_back":
		return "live"
	}
	return "none"
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func appURL(ns, app string) string {
	return "/apps/" + url.PathEscape(ns) + "/" + url.PathEscape(app)
}

// view is what every page template receives.
type view struct {
	Title    string
	Identity string
	Cluster  string
	// Live is the /live URL the page subscribes to for updates.
	Live   string
	Notice *notice
	Error  string
	// Overview or App is set, by page.
	Overview *action.OverviewResult
	App      *appView
	s        *Server
}

// pendingCard is a pending release with its decision forms.
type pendingCard struct {
	P     action.Pending
	Forms forms
}

// forms are the Approve and Reject forms' actions and CSRF tokens.
type forms struct {
	ApprovePath, ApproveToken, RejectPath, RejectToken string
}

// PendingCard is the template's argument for a pending release.
func (v view) PendingCard(p action.Pending) pendingCard {
	base := appURL(p.Namespace, p.App) + "/releases/" + url.PathEscape(p.Release) + "/"
	return pendingCard{P: p, Forms: forms{
		ApprovePath: base + "approve", ApproveToken: v.s.csrfToken(base + "approve"),
		RejectPath: base + "reject", RejectToken: v.s.csrfToken(base + "reject"),
	}}
}

// appView is an app's page: its state now, its pending decisions, and its release timeline.
type appView struct {
	Namespace string
	App       string
	State     *action.AppState
	Timeline  []action.TimelineEntry
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	v := s.base(r, "Overview", "/live?view=overview")
	s.fillOverview(r.Context(), &v)
	s.render(w, "overview", "layout.html", v)
}

func (s *Server) app(w http.ResponseWriter, r *http.Request) {
	ns, app := r.PathValue("ns"), r.PathValue("app")
	v := s.base(r, app+" in "+ns, "/live?view=app&ns="+url.QueryEscape(ns)+"&app="+url.QueryEscape(app))
	s.fillApp(r.Context(), &v, ns, app)
	s.render(w, "app", "layout.html", v)
}

func (s *Server) base(r *http.Request, title, live string) view {
	v := view{Title: title, Live: live, s: s, Identity: s.identity(r.Context())}
	if id := r.URL.Query().Get("notice"); id != "" {
		v.Notice = s.recall(id)
	}
	return v
}

func (s *Server) fillOverview(ctx context.Context, v *view) {
	o := &action.Overview{Connect: s.Connect, Namespace: s.Namespace, Envs: s.Envs}
	res, err := o.Run(ctx)
	if err != nil {
		v.Error = err.Error()
		return
	}
	v.Overview = res
}

func (s *Server) fillApp(ctx context.Context, v *view, ns, app string) {
	av := &appView{Namespace: ns, App: app}
	v.App = av
	o := &action.Overview{Connect: s.Connect, Namespace: ns}
	res, err := o.Run(ctx)
	if err != nil {
		v.Error = err.Error()
		return
	}
	for i := range res.Apps {
		if res.Apps[i].App == app && res.Apps[i].Namespace == ns {
			av.State = &res.Apps[i]
		}
	}
	tl := &action.Timeline{Connect: s.Connect, Namespace: ns, App: app}
	if av.Timeline, err = tl.Run(ctx); err != nil {
		v.Error = err.Error()
	}
}

// render executes a page (or one of its blocks, for live updates) into w.
func (s *Server) render(w http.ResponseWriter, page, block string, v view) {
	var b bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&b, block, v); err != nil {
		s.Log.Error("rendering the page", "page", page, "error", err)
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

// decide records an approval or rejection as the caller, exactly as `rollguard approve|reject` does: a
// waiting deploy acts on it; when none waits, the approval's rollback is carried out here, in the
// background, and the app's page follows it live.
func (s *Server) decide(w http.ResponseWriter, r *http.Request) {
	ns, app, id, decision := r.PathValue("ns"), r.PathValue("app"), r.PathValue("id"), r.PathValue("decision")
	if decision != "approve" && decision != "reject" {
		http.NotFound(w, r)
		return
	}
	if !s.validToken(r.URL.Path, r.PostFormValue("csrf")) {
		http.Error(w, "this form is stale or did not come from this dashboard (CSRF token mismatch): reload the page and try again", http.StatusForbidden)
		return
	}
	d := &action.Decision{Connect: s.Connect, Namespace: ns, Release: id, Approve: decision == "approve", Getenv: s.Getenv, LockTTL: 30 * time.Second}
	d.Timeout = s.Timeout
	d.Log = s.Log
	// The decision outlives the request (a rollback takes a while); the page shows its progress live.
	done := make(chan struct{})
	var res *action.DecisionResult
	var err error
	s.decisions.Add(1)
	go func() {
		defer s.decisions.Done()
		defer close(done)
		res, err = d.Run(context.WithoutCancel(s.ctx))
		if err != nil {
			s.Log.Warn("decision failed", "release", id, "decision", decision, "error", err)
		}
	}()
	var n notice
	select {
	case <-done:
		n = decisionNotice(id, decision, res, err)
	case <-time.After(3 * time.Second):
		// Recorded, and this dashboard is rolling the held release back itself.
		n = notice{Text: fmt.Sprintf("Decision on %s recorded; rolling back now — this page follows it.", id)}
	}
	http.Redirect(w, r, appURL(ns, app)+"?notice="+s.remember(n), http.StatusSeeOther)
}

func decisionNotice(id, decision string, res *action.DecisionResult, err error) notice {
	if err != nil {
		code := exitcode.Of(err)
		text := err.Error()
		if strings.Contains(text, "forbidden") {
			return notice{Refused: true, Text: "Refused: your Kubernetes identity may not " + decision + " " + id + ". " + text}
		}
		if code == exitcode.Unreachable {
			return notice{Refused: true, Text: "Could not reach the cluster: " + text}
		}
		return notice{Refused: true, Text: "Not done: " + text}
	}
	if res.Result != nil {
		return notice{Text: res.Result.Message}
	}
	a := res.Record.Approval
	verb := "Rollback approved"
	if a.Decision == release.Declined {
		verb = "Rollback rejected"
	}
	return notice{Text: fmt.Sprintf("%s by %s; the waiting deploy acts on it now.", verb, a.By)}
}

// identity is who the caller is to the cluster (asked once): the name decisions are recorded under.
func (s *Server) identity(ctx context.Context) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.who == "" {
		if c, err := s.Connect(ctx); err == nil {
			s.who = release.Identity(ctx, c, manifest.CI{})
			s.cluster = c.Server
		}
	}
	return s.who
}
