package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rollguard/rollguard/internal/release"
)

// hookSecret is in every receiver URL: it must never appear in what rollguard prints.
const hookSecret = "T0-B0-hooksecret-9f3a1c"

// hooks is a local HTTP receiver standing in for Slack, Teams and a generic JSON endpoint: it records
// what arrives at /slack/…, /teams/… and /json/…. /fail/… always answers 500 and /hang/… never answers.
type hooks struct {
	*httptest.Server
	mu   sync.Mutex
	got  map[string][][]byte
	hang chan struct{}
}

func newHooks(t *testing.T) *hooks {
	h := &hooks{got: map[string][][]byte{}, hang: make(chan struct{})}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		switch kind {
		case "fail":
			w.WriteHeader(http.StatusInternalServerError)
			return
		case "hang":
			select {
			case <-h.hang:
			case <-r.Context().Done():
			}
			return
		}
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.got[kind] = append(h.got[kind], body)
		h.mu.Unlock()
	}))
	t.Cleanup(func() { close(h.hang); h.Close() })
	return h
}

// url is the receiver's address for a format, with the secret path.
func (h *hooks) url(kind string) string { return h.URL + "/" + kind + "/services/" + hookSecret }

func (h *hooks) bodies(kind string) [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.got[kind]...)
}

// events decodes the generic JSON deliveries.
func (h *hooks) events(t *testing.T) []notifyEvent {
	t.Helper()
	var out []notifyEvent
	for _, b := range h.bodies("json") {
		var e notifyEvent
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("generic payload is not JSON: %v\n%s", err, b)
		}
		out = append(out, e)
	}
	return out
}

// waitFor waits until n generic JSON events arrived.
func (h *hooks) waitFor(t *testing.T, n int) []notifyEvent {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		return len(h.bodies("json")) >= n, nil
	})
	if err != nil {
		t.Fatalf("%d JSON notifications arrived, want %d", len(h.bodies("json")), n)
	}
	return h.events(t)
}

// notifyEvent is the documented generic payload (docs/notifications.md), as a receiver reads it.
type notifyEvent struct {
	Schema    string   `json:"schema"`
	Event     string   `json:"event"`
	ID        string   `json:"id"`
	App       string   `json:"app"`
	Namespace string   `json:"namespace"`
	Release   string   `json:"release"`
	Cluster   string   `json:"cluster"`
	Reason    string   `json:"reason"`
	Message   string   `json:"message"`
	Workload  string   `json:"workload"`
	Evidence  []string `json:"evidence"`
	Rollback  *struct {
		Healthy bool   `json:"healthy"`
		By      string `json:"by"`
	} `json:"rollback"`
	Approval *struct {
		ApproveCommand string `json:"approveCommand"`
		RejectCommand  string `json:"rejectCommand"`
		Dashboard      string `json:"dashboard"`
	} `json:"approval"`
}

func kinds(es []notifyEvent) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Event)
	}
	return out
}

func noHookURL(t *testing.T, outputs ...string) {
	t.Helper()
	for _, o := range outputs {
		if strings.Contains(o, hookSecret) {
			t.Errorf("a webhook URL was printed:\n%s", o)
		}
	}
}

// TestNotificationsOnRollback: a failed release sends release_failed and rolled_back, once each, to every
// format, with the documented payloads; no webhook URL is printed, even at debug log level.
func TestNotificationsOnRollback(t *testing.T) {
	t.Parallel()
	h := newHooks(t)
	ns := cluster.Namespace(t)
	deployV1(t, ns)
	r := rollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--timeout", "5m", "--log-level", "debug",
		"--notify", "slack+"+h.url("slack"), "--notify", "teams+"+h.url("teams"), "--notify", "json+"+h.url("json"))
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	noHookURL(t, r.stdout, r.stderr)
	// The run flushes its notifications before it exits: everything has arrived.
	es := h.events(t)
	if got := kinds(es); len(got) != 2 || !slices.Contains(got, "release_failed") || !slices.Contains(got, "rolled_back") {
		t.Fatalf("JSON events %v, want release_failed and rolled_back once each", got)
	}
	// Deliveries run in parallel: order them by kind, not by arrival.
	failed, back := es[0], es[1]
	if failed.Event != "release_failed" {
		failed, back = back, failed
	}
	if failed.Schema != "rollguard.dev/notification/v1" || failed.App != "web" || failed.Namespace != ns || failed.Release == "" ||
		failed.Reason != "ImagePullFailed" || failed.Workload != "Deployment/web" || failed.Message == "" || len(failed.Evidence) == 0 || failed.Cluster == "" {
		t.Errorf("release_failed payload incomplete: %+v", failed)
	}
	if back.Rollback == nil || !back.Rollback.Healthy || back.Release != failed.Release || back.ID == failed.ID {
		t.Errorf("rolled_back payload: %+v", back)
	}
	for _, f := range []string{"slack", "teams"} {
		bs := h.bodies(f)
		if len(bs) != 2 {
			t.Fatalf("%s received %d messages, want 2", f, len(bs))
		}
		all := string(bs[0]) + string(bs[1])
		for _, want := range []string{"Release failed: " + failed.Release, "Release rolled back: " + failed.Release} {
			if !strings.Contains(all, want) {
				t.Errorf("no %s message says %q:\n%s", f, want, all)
			}
		}
	}
	var slack struct {
		Text   string            `json:"text"`
		Blocks []json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(h.bodies("slack")[0], &slack); err != nil || slack.Text == "" || len(slack.Blocks) < 3 {
		t.Errorf("slack payload is not a Block Kit message (%v): %s", err, h.bodies("slack")[0])
	}
	var teams struct {
		Attachments []struct {
			ContentType string `json:"contentType"`
			Content     struct {
				Type string `json:"type"`
			} `json:"content"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(h.bodies("teams")[0], &teams); err != nil || len(teams.Attachments) != 1 ||
		teams.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" || teams.Attachments[0].Content.Type != "AdaptiveCard" {
		t.Errorf("teams payload is not an Adaptive Card message (%v): %s", err, h.bodies("teams")[0])
	}
	assertV1(t, ns)
}

// TestNotificationsOnApproval: a release held for a decision sends approval_needed with the exact
// commands and the dashboard link while it waits; the approval's rollback sends rolled_back naming the
// approver.
func TestNotificationsOnApproval(t *testing.T) {
	t.Parallel()
	h := newHooks(t)
	ns := cluster.Namespace(t)
	deployV1(t, ns)
	done := startRollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--on-failure", "approve", "--approval-timeout", "5m",
		"--timeout", "5m", "--notify", h.url("json"), "--dashboard-url", "http://127.0.0.1:8181")
	id := waitForOutcome(t, ns, "web", release.PendingApproval)
	es := h.waitFor(t, 1)
	a := es[0]
	if a.Event != "approval_needed" || a.Approval == nil || a.Reason != "ImagePullFailed" {
		t.Fatalf("first event %+v, want approval_needed with the failure", a)
	}
	if a.Approval.ApproveCommand != "rollguard approve "+id+" -n "+ns || a.Approval.RejectCommand != "rollguard reject "+id+" -n "+ns {
		t.Errorf("commands %q / %q", a.Approval.ApproveCommand, a.Approval.RejectCommand)
	}
	if a.Approval.Dashboard != "http://127.0.0.1:8181/apps/"+ns+"/web#"+id {
		t.Errorf("dashboard link %q", a.Approval.Dashboard)
	}
	d := rollguard(t, "", "approve", id, "-n", ns, "--notify", h.url("json"))
	if d.code != 0 {
		t.Fatalf("approve: exit %d\n%s", d.code, d.stderr)
	}
	r := done()
	if r.code != 1 {
		t.Fatalf("deploy exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	noHookURL(t, r.stdout, r.stderr, d.stdout, d.stderr)
	es = h.events(t)
	if got := strings.Join(kinds(es), ","); got != "approval_needed,rolled_back" {
		t.Fatalf("events %s, want approval_needed,rolled_back (the approve that only records sends nothing)", got)
	}
	if rb := es[1].Rollback; rb == nil || !rb.Healthy || rb.By == "" {
		t.Errorf("rolled_back does not say healthy and who approved: %+v", rb)
	}
}

// TestNotificationReceiverDown: receivers that fail or never answer change neither the outcome nor the
// release's timing; the run ends at most the flush bound (10s) after the release finished.
func TestNotificationReceiverDown(t *testing.T) {
	t.Parallel()
	h := newHooks(t)
	ns := cluster.Namespace(t)
	deployV1(t, ns)
	r := rollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "5m", "--log-level", "debug",
		"--notify", h.url("fail"), "--notify", h.url("hang"))
	ended := time.Now()
	if r.code != 1 {
		t.Fatalf("exit %d, want 1: a notification must not fail a deploy\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep := parseReport(t, r)
	if rep.Outcome != "rolled_back" {
		t.Errorf("outcome %s, want rolled_back", rep.Outcome)
	}
	finished, err := time.Parse(time.RFC3339Nano, rep.FinishedAt)
	if err != nil {
		t.Fatal(err)
	}
	if extra := ended.Sub(finished); extra > 15*time.Second {
		t.Errorf("the run ended %s after the release finished; notifications may add at most the 10s flush bound", extra)
	}
	if !strings.Contains(r.stderr, "json webhook #1") || !strings.Contains(r.stderr, "json webhook #2") {
		t.Errorf("undelivered notifications not reported by target:\n%s", r.stderr)
	}
	noHookURL(t, r.stdout, r.stderr)
	assertV1(t, ns)
}

// TestNotifyBadInput: an unparsable URL or an unknown format exits 3 before anything changes, without
// printing the URL.
func TestNotifyBadInput(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	for _, target := range []string{"discord+https://example.com/" + hookSecret, "https//example.com/" + hookSecret, "ftp://example.com/" + hookSecret} {
		for _, cmd := range [][]string{
			{"deploy", "-f", "-", "-n", ns},
			{"rollback", "web.v1", "-n", ns},
			{"approve", "web.v1", "-n", ns},
		} {
			r := rollguard(t, releaseV1(), append(cmd, "--notify", target)...)
			if r.code != 3 || !strings.Contains(r.stderr, "notify target #1") {
				t.Errorf("%s --notify %q: exit %d, want 3 naming the target\n%s", cmd[0], target, r.code, r.stderr)
			}
			noHookURL(t, r.stdout, r.stderr)
		}
	}
	if rs := records(t, ns, ""); len(rs) != 0 {
		t.Errorf("bad input recorded %d releases", len(rs))
	}
}
