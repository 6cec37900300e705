package notify

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollguard/rollguard/internal/exitcode"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want Format
	}{
		{"https://hooks.slack.com/services/T0/B0/secret", Slack},
		{"https://prod-12.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=secret", Teams},
		{"https://default0.environment.api.powerplatform.com/powerautomate/automations/direct/workflows/x", Teams},
		{"https://example.com/hook", JSON},
		{"slack+https://chat.example.com/hook", Slack},
		{"TEAMS+https://example.com/hook", Teams},
		{"json+http://127.0.0.1:9/x", JSON},
	} {
		ts, err := Parse([]string{tc.spec})
		if err != nil {
			t.Errorf("%s: %v", tc.spec, err)
			continue
		}
		if ts[0].Format != tc.want {
			t.Errorf("%s: format %s, want %s", tc.spec, ts[0].Format, tc.want)
		}
	}
}

func TestParseRejectsBadTargetsWithoutShowingThem(t *testing.T) {
	for _, spec := range []string{
		"discord+https://example.com/secret-path",
		"https://",
		"not a url secret-path",
		"ftp://example.com/secret-path",
		"https://user:secret-path@example.com/x",
		"://secret-path",
		"%zz://secret-path",
	} {
		_, err := Parse([]string{"https://example.com/ok", spec})
		if err == nil {
			t.Errorf("%q accepted", spec)
			continue
		}
		if exitcode.Of(err) != exitcode.BadInput {
			t.Errorf("%q: exit %d, want 3", spec, exitcode.Of(err))
		}
		if strings.Contains(err.Error(), "secret-path") {
			t.Errorf("%q: error shows the URL: %v", spec, err)
		}
		if !strings.Contains(err.Error(), "#2") {
			t.Errorf("%q: error does not name the target's position: %v", spec, err)
		}
	}
}

func sample() Event {
	approve, reject := Commands("web.v7", "shop")
	return Event{
		Kind: ApprovalNeeded, App: "web", Environment: "production", Namespace: "shop", Release: "web.v7",
		Reason: "ImagePullFailed", Message: "Deployment/web: image <web:2> cannot be pulled", Workload: "Deployment/web",
		Evidence: []string{"Pod/web-1: Back-off pulling image"}, At: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC),
		Approval: &Approval{ApproveCommand: approve, RejectCommand: reject, Dashboard: "http://127.0.0.1:8080/apps/shop/web#web.v7"},
	}
}

func TestPayloads(t *testing.T) {
	e := sample()
	// Generic JSON: the Event itself, with the schema version.
	b, err := Payload(JSON, e)
	if err != nil {
		t.Fatal(err)
	}
	var got Event
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Schema != Schema || got.Kind != ApprovalNeeded || got.Approval.ApproveCommand != "rollguard approve web.v7 -n shop" {
		t.Errorf("json payload: %s", b)
	}

	b, err = Payload(Slack, e)
	if err != nil {
		t.Fatal(err)
	}
	var slack struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type     string                 `json:"type"`
			Text     *struct{ Text string } `json:"text"`
			Elements []map[string]any       `json:"elements"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(b, &slack); err != nil {
		t.Fatal(err)
	}
	if slack.Text != "Rollback waits for approval: web.v7 in production" || slack.Blocks[0].Type != "header" {
		t.Errorf("slack payload: %s", b)
	}
	if !bytes.Contains(b, []byte("&lt;web:2&gt;")) {
		t.Errorf("slack payload does not escape mrkdwn markup: %s", b)
	}
	if !bytes.Contains(b, []byte(`"url":"http://127.0.0.1:8080/apps/shop/web#web.v7"`)) {
		t.Errorf("slack payload has no dashboard button: %s", b)
	}

	b, err = Payload(Teams, e)
	if err != nil {
		t.Fatal(err)
	}
	var teams struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string `json:"contentType"`
			Content     struct {
				Type    string           `json:"type"`
				Version string           `json:"version"`
				Actions []map[string]any `json:"actions"`
			} `json:"content"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(b, &teams); err != nil {
		t.Fatal(err)
	}
	if teams.Type != "message" || len(teams.Attachments) != 1 || teams.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" ||
		teams.Attachments[0].Content.Type != "AdaptiveCard" || len(teams.Attachments[0].Content.Actions) != 1 {
		t.Errorf("teams payload: %s", b)
	}
}

// receiver is a local HTTP server that answers each request with the next status of its script
// (the last one repeats) and records the bodies it accepted.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	calls    int
	accepted [][]byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.statuses[min(r.calls, len(r.statuses)-1)]
	r.calls++
	if st == http.StatusOK {
		r.accepted = append(r.accepted, body)
	}
	w.WriteHeader(st)
}

func TestRetriesUntilDelivered(t *testing.T) {
	rcv := &receiver{statuses: []int{500, 429, 200}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	var logs bytes.Buffer
	ts, err := Parse([]string{"json+" + srv.URL + "/secret-path"})
	if err != nil {
		t.Fatal(err)
	}
	n := New(ts, Options{Backoff: time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	n.Notify(sample())
	if failed := n.Flush(); failed != 0 {
		t.Fatalf("%d deliveries failed; log:\n%s", failed, logs.String())
	}
	if rcv.calls != 3 || len(rcv.accepted) != 1 {
		t.Errorf("%d calls, %d accepted; want 3 calls and the event accepted once", rcv.calls, len(rcv.accepted))
	}
}

func TestClientErrorIsNotRetriedAndURLNeverLogged(t *testing.T) {
	rcv := &receiver{statuses: []int{404}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	var logs bytes.Buffer
	ts, _ := Parse([]string{srv.URL + "/secret-path", "json+http://127.0.0.1:1/secret-path"})
	n := New(ts, Options{Backoff: time.Millisecond, Attempts: 2, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	n.Notify(sample())
	if failed := n.Flush(); failed != 2 {
		t.Errorf("%d failed, want 2 (404 and refused)", failed)
	}
	if rcv.calls != 1 {
		t.Errorf("404 was tried %d times, want once", rcv.calls)
	}
	if strings.Contains(logs.String(), "secret-path") || strings.Contains(logs.String(), srv.URL) {
		t.Errorf("a URL was logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "json webhook #1") || !strings.Contains(logs.String(), "json webhook #2") {
		t.Errorf("failed targets not named:\n%s", logs.String())
	}
}

func TestHangingReceiverIsAbandonedWithinTheBound(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	ts, _ := Parse([]string{srv.URL + "/x"})
	n := New(ts, Options{AttemptTimeout: time.Minute, FlushTimeout: 200 * time.Millisecond})
	start := time.Now()
	n.Notify(sample())
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Notify blocked for %s", d)
	}
	if failed := n.Flush(); failed != 1 {
		t.Errorf("%d failed, want the hanging delivery abandoned", failed)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Flush took %s, bound 200ms", d)
	}
}

func TestNilNotifierSendsNothing(t *testing.T) {
	var n *Notifier
	n.Notify(sample())
	if n.Flush() != 0 || New(nil, Options{}) != nil {
		t.Error("a notifier without targets must be nil and inert")
	}
}
