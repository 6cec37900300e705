package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollguard/rollguard/internal/release"
)

// startDashboard runs `rollguard dashboard` on a free loopback port with the given environment and
// returns its URL; it is stopped when the test ends.
func startDashboard(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"dashboard", "--address", "127.0.0.1:0", "--refresh", "300ms"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Dir = t.TempDir() // no rollguard.yaml here
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	ready := regexp.MustCompile(`rollguard dashboard on (http://127\.0\.0\.1:\d+)`)
	timeout := time.After(time.Minute)
	var seen []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("dashboard exited before serving:\n%s", strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			if m := ready.FindStringSubmatch(l); m != nil {
				go func() {
					for range lines {
					}
				}()
				return m[1]
			}
		case <-timeout:
			t.Fatalf("dashboard did not start within a minute:\n%s", strings.Join(seen, "\n"))
		}
	}
}

// browser starts Debian's Chromium headless (installed by .ci/chromium.sh, which `make test` runs) with a
// fresh profile and no background networking.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	exe := os.Getenv("ROLLGUARD_CHROMIUM")
	if exe == "" {
		var err error
		if exe, err = exec.LookPath("chromium"); err != nil {
			t.Fatal("chromium not found: run .ci/chromium.sh (make test runs it) or set ROLLGUARD_CHROMIUM")
		}
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(width, height),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// artifacts is where screenshots go: $ROLLGUARD_ARTIFACTS, else e2e/artifacts (git-ignored).
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ROLLGUARD_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	dir = filepath.Join(dir, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(artifacts(t), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// byID selects an element by id; release ids hold dots, which CSS would read as classes.
func byID(id string) string { return `[id="` + id + `"]` }

// Live updates replace parts of the page at any moment, so conditions and texts are read in one
// JavaScript evaluation each, never through DOM node ids that an update can invalidate in between.

// waitFor waits until an element matching sel exists.
func waitFor(sel string) chromedp.Action {
	return chromedp.Poll(fmt.Sprintf(`!!document.querySelector(%q)`, sel), nil, chromedp.WithPollingInterval(100*time.Millisecond))
}

// textOf reads the visible text of the first element matching sel.
func textOf(sel string, text *string) chromedp.Action {
	return chromedp.Evaluate(fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel), text)
}

// submit runs actions that submit a form and waits for the page the answer leads to.
func submit(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	if _, err := chromedp.RunResponse(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func page(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var html string
		_ = chromedp.Run(ctx, chromedp.OuterHTML("main", &html, chromedp.ByQuery))
		screenshot(t, ctx, "failure-"+regexp.MustCompile(`\W+`).ReplaceAllString(t.Name(), "-")+".png")
		t.Fatalf("%s: %v\npage:\n%s", what, err, html)
	}
}

// TestDashboardApprove drives the dashboard in headless Chromium: the overview lists the apps, a deploy
// waiting with --on-failure=approve appears as pending without a reload, Approve (pressed with the
// keyboard) records the decision as the caller and the waiting deploy rolls back, and the page shows the
// outcome. No Secret value reaches the page.
func TestDashboardApprove(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployV1(t, ns)
	if r := rollguard(t, app{name: "api", replicas: 2, image: "registry.example.com/api:3.1.0"}.yaml(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m"); r.code != 0 {
		t.Fatalf("api: exit %d\n%s", r.code, r.stderr)
	}
	base := startDashboard(t, []string{"KUBECONFIG=" + cluster.Kubeconfig}, "-n", ns)
	ctx := browser(t, 1280, 900)

	var text string
	page(t, ctx, "overview lists the apps",
		chromedp.Navigate(base),
		waitFor(byID("app-"+ns+"-web")),
		waitFor(byID("app-"+ns+"-api")),
		textOf("table.apps", &text),
	)
	for _, want := range []string{"web.v1", "api.v1", "succeeded", "healthy", "registry.example.com/web:1.0.0", "Deployment/web", "Deployment/api"} {
		if !strings.Contains(text, want) {
			t.Errorf("overview lacks %q:\n%s", want, text)
		}
	}
	screenshot(t, ctx, "overview.png")

	done := startRollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--on-failure", "approve", "--approval-timeout", "5m", "--timeout", "5m")
	id := waitForOutcome(t, ns, "web", release.PendingApproval)
	// The open page learns of it by itself (server-sent events), without a reload.
	page(t, ctx, "pending release appears live",
		waitFor(byID("pending-"+id)),
		textOf(byID("pending-"+id), &text),
	)
	if !strings.Contains(text, "ImagePullFailed") || !strings.Contains(text, "rollguard approve "+id+" -n "+ns) {
		t.Errorf("pending card lacks the reason or the command:\n%s", text)
	}
	screenshot(t, ctx, "pending.png")

	page(t, ctx, "focus Approve", waitFor(byID("approve-"+id)),
		chromedp.Evaluate(fmt.Sprintf(`document.querySelector(%q).focus()`, byID("approve-"+id)), nil))
	submit(t, ctx, "approve with the keyboard", chromedp.KeyEvent(kb.Enter))
	page(t, ctx, "notice after approving", waitFor("#notice"), textOf("#notice", &text))
	if !strings.Contains(text, "Rollback approved by") {
		t.Errorf("notice after approving: %q", text)
	}
	r := done()
	if r.code != 1 {
		t.Fatalf("waiting deploy: exit %d, want 1 (rolled back)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rec := record(t, ns, id)
	if rec.Approval == nil || rec.Approval.Decision != release.Approved || rec.Approval.By == "" {
		t.Errorf("decision not recorded with who: %+v", rec.Approval)
	}
	var outcome string
	page(t, ctx, "page shows the rollback's outcome",
		waitFor(byID(id)+` .badge.ok`),
		waitFor(byID("now-outcome")+`.ok`),
		textOf(byID(id)+` .badge`, &outcome),
	)
	if outcome != "rolled back" {
		t.Errorf("timeline shows %s as %q, want rolled back", id, outcome)
	}
	// The timeline explains the failure (reason, evidence, fix) and says who decided.
	page(t, ctx, "timeline explains", textOf(byID(id), &text))
	for _, want := range []string{"ImagePullFailed", "Deployment/web", "Fix:", "Rollback approved by " + rec.Approval.By, "rolled back to web.v1"} {
		if !strings.Contains(text, want) {
			t.Errorf("timeline entry lacks %q:\n%s", want, text)
		}
	}
	var evidence int
	page(t, ctx, "count evidence", chromedp.Evaluate(`document.querySelectorAll('[id="`+id+`"] .evidence li').length`, &evidence))
	if evidence == 0 {
		t.Errorf("timeline entry shows no evidence")
	}
	screenshot(t, ctx, "app-timeline.png")
	assertV1(t, ns)

	var html string
	page(t, ctx, "read the page", chromedp.OuterHTML("html", &html, chromedp.ByQuery))
	noSecrets(t, html)

	// Phone width: the same page, readable.
	phone := browser(t, 1280, 900)
	page(t, phone, "overview at phone width", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(base), waitFor(byID("app-"+ns+"-web")))
	var overflow bool
	page(t, phone, "measure", chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow))
	if overflow {
		t.Errorf("the overview scrolls sideways at 390px")
	}
	screenshot(t, phone, "overview-phone.png")
}

// heldRelease deploys v1, then a broken v2 with --on-failure=hold, and returns v2's id: a release that
// waits for a decision with no run waiting.
func heldRelease(t *testing.T, ns string) string {
	t.Helper()
	deployV1(t, ns)
	if r := rollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--on-failure", "hold", "--timeout", "5m"); r.code != 5 {
		t.Fatalf("held deploy: exit %d, want 5\n%s", r.code, r.stderr)
	}
	return waitForOutcome(t, ns, "web", release.PendingApproval)
}

// TestDashboardRefusesWithoutRBAC: a user whose RBAC lets them read releases but not decide sees the
// pending release, and pressing Approve gives a clear refusal; nothing changes.
func TestDashboardRefusesWithoutRBAC(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	id := heldRelease(t, ns)

	ctx := context.Background()
	c := cluster.Client()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "release-viewer"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets", "pods"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get"}},
	}}
	if _, err := c.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kc := serviceAccountKubeconfig(t, ns, "viewer")
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "release-viewer"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "release-viewer"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "viewer", Namespace: ns}}}
	if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	base := startDashboard(t, []string{"KUBECONFIG=" + kc}, "-n", ns)
	b := browser(t, 1280, 900)
	var text string
	page(t, b, "the viewer sees the pending release",
		chromedp.Navigate(base),
		waitFor(byID("pending-"+id)),
		textOf(".who", &text),
	)
	if !strings.Contains(text, "system:serviceaccount:"+ns+":viewer") {
		t.Errorf("the page does not say who the caller is: %q", text)
	}
	// Through the keyboard, as TestDashboardApprove: a click resolves the button to a DOM node id first,
	// which a live update arriving in between invalidates ("Could not find node with given id").
	page(t, b, "focus Approve", chromedp.Evaluate(fmt.Sprintf(`document.querySelector(%q).focus()`, byID("approve-"+id)), nil))
	submit(t, b, "press Approve", chromedp.KeyEvent(kb.Enter))
	page(t, b, "approve is refused", waitFor(".notice.refused"), textOf(".notice.refused", &text))
	if !strings.Contains(text, "Refused: your Kubernetes identity may not approve "+id) || !strings.Contains(text, "forbidden") {
		t.Errorf("refusal is not clear: %q", text)
	}
	screenshot(t, b, "refused.png")
	if rec := record(t, ns, id); rec.Outcome != release.PendingApproval || rec.Approval == nil || rec.Approval.Decision != "" {
		t.Errorf("a refused approval changed the record: %s %+v", rec.Outcome, rec.Approval)
	}
}

// TestDashboardRefusesForgedRequests: a POST without the page's CSRF token, a cross-origin POST, and a
// request addressed to a foreign host name (DNS rebinding) are refused without touching the release.
func TestDashboardRefusesForgedRequests(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	id := heldRelease(t, ns)
	base := startDashboard(t, []string{"KUBECONFIG=" + cluster.Kubeconfig}, "-n", ns)
	post := base + "/apps/" + ns + "/web/releases/" + id + "/approve"
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		name   string
		header map[string]string
		form   url.Values
		host   string
		want   int
	}{
		{name: "no token", form: url.Values{}, want: http.StatusForbidden},
		{name: "wrong token", form: url.Values{"csrf": {"0000"}}, want: http.StatusForbidden},
		{name: "cross-origin", form: url.Values{"csrf": {"0000"}}, header: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}, want: http.StatusForbidden},
		{name: "foreign host", form: url.Values{}, host: "evil.example", want: http.StatusMisdirectedRequest},
	} {
		req, _ := http.NewRequest(http.MethodPost, post, strings.NewReader(tc.form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	if rec := record(t, ns, id); rec.Outcome != release.PendingApproval || rec.Approval == nil || rec.Approval.Decision != "" {
		t.Errorf("a forged request changed the record: %s %+v", rec.Outcome, rec.Approval)
	}
	// Non-loopback needs an explicit flag.
	r := rollguard(t, "", "dashboard", "--address", "0.0.0.0:0")
	if r.code != 3 || !strings.Contains(r.stderr, "--allow-remote") {
		t.Errorf("non-loopback without --allow-remote: exit %d\n%s", r.code, r.stderr)
	}
}
