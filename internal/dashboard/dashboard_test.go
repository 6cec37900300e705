package dashboard

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/internal/action"
)

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:8080": true, "[::1]:8080": true, "127.0.0.2:0": true,
		"0.0.0.0:8080": false, ":8080": false, "192.168.1.5:8080": false, "example.com:80": false, "nonsense": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestLoopbackHostOnly(t *testing.T) {
	h := loopbackHostOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	for host, want := range map[string]int{
		"127.0.0.1:8080": 200, "localhost:8080": 200, "[::1]:8080": 200,
		"evil.example:8080": http.StatusMisdirectedRequest, "10.0.0.1": http.StatusMisdirectedRequest,
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Host %s: %d, want %d", host, w.Code, want)
		}
	}
}

// TestOverviewRenders renders the overview's live part from a result (no cluster: pure templating) and
// checks each decision form carries the token valid for its own action only.
func TestOverviewRenders(t *testing.T) {
	s := &Server{key: []byte("k")}
	var err error
	if s.pages, err = parsePages(); err != nil {
		t.Fatal(err)
	}
	p := action.Pending{Release: "web.v2", App: "web", Namespace: "shop", Reason: "ImagePullFailed", Message: "<b>x</b>", RequestedAt: time.Now()}
	v := view{s: s, Overview: &action.OverviewResult{
		Pending: []action.Pending{p},
		Apps: []action.AppState{{App: "web", Pending: []action.Pending{p}, EnvState: action.EnvState{Name: "shop", Namespace: "shop", Release: "web.v2", Outcome: "pending_approval", Health: "unhealthy",
			Workloads: []action.EnvWorkload{{Kind: "Deployment", Name: "web", Detail: "0/3 available", Images: []action.RunningImage{{Container: "web", Image: "r/web:2"}}}}}}},
	}}
	var b bytes.Buffer
	if err := s.pages["overview"].ExecuteTemplate(&b, "overview-live", v); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	approve := "/apps/shop/web/releases/web.v2/approve"
	if !strings.Contains(html, `action="`+approve+`"`) || !strings.Contains(html, `value="`+s.csrfToken(approve)+`"`) {
		t.Errorf("approve form or its token missing:\n%s", html)
	}
	if !s.validToken(approve, s.csrfToken(approve)) || s.validToken("/apps/shop/web/releases/web.v2/reject", s.csrfToken(approve)) {
		t.Error("a token must be valid for its own action only")
	}
	if strings.Contains(html, "<b>x</b>") {
		t.Error("a message was rendered as HTML")
	}
}
