// Package dashboard serves `rollguard dashboard`: a local web UI over the caller's own kubeconfig, so the
// caller's RBAC decides what they see and whether they may decide on a rollback (the model of
// `kubectl argo rollouts dashboard`). It only presents: every reading and every decision is an action of
// internal/action (Overview, History, Decision), the same code the CLI runs.
//
// Security: it binds to loopback unless told otherwise; on loopback it answers only requests whose Host
// is a loopback name (DNS rebinding); every POST passes Go's cross-origin protection and carries a
// per-server CSRF token; release records hold Secret data, and nothing here renders more than the
// names, outcomes and messages the CLI prints.
package dashboard

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/kube"
)

//go:embed assets templates
var files embed.FS

// Server is the dashboard.
type Server struct {
	// Connect opens the caller's connection (their kubeconfig, context and impersonation flags).
	Connect action.Connector
	// Namespace limits the dashboard to one namespace; "" shows every namespace the caller may read.
	Namespace string
	// Envs, when set, adds rollguard.yaml's environments to the overview.
	Envs *action.Envs
	// Getenv reads CI variables for the decision's identity, as the CLI does; nil reads none.
	Getenv func(string) string
	// Refresh is how often live pages re-read the cluster (default 2s).
	Refresh time.Duration
	// Timeout bounds a rollback the dashboard carries out itself (a held release with no waiting run).
	Timeout time.Duration
	Log     *slog.Logger

	key       []byte
	pages     map[string]*template.Template
	mu        sync.Mutex
	notices   map[string]notice
	who       string
	cluster   string
	decisions sync.WaitGroup
	ctx       context.Context
}

// notice is the message shown once after a decision (kept server-side: a URL parameter could be
// forged to show a fake "approved").
type notice struct {
	Text    string
	Refused bool
}

// Handler returns the dashboard's HTTP handler. addr is the address it listens on: on loopback, only
// requests addressed to a loopback name are served. ctx bounds the decisions it carries out.
func (s *Server) Handler(ctx context.Context, addr string) (http.Handler, error) {
	s.ctx = ctx
	s.Connect = connectOnce(s.Connect)
	s.key = make([]byte, 32)
	if _, err := rand.Read(s.key); err != nil {
		return nil, err
	}
	s.notices = map[string]notice{}
	if s.Refresh <= 0 {
		s.Refresh = 2 * time.Second
	}
	if s.Timeout <= 0 {
		s.Timeout = 5 * time.Minute
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	var err error
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(files, "assets")
	mux := http.NewServeMux()
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", s.overview)
	mux.HandleFunc("GET /apps/{ns}/{app}", s.app)
	mux.HandleFunc("GET /live", s.live)
	mux.HandleFunc("POST /apps/{ns}/{app}/releases/{id}/{decision}", s.decide)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })

	var h http.Handler = http.NewCrossOriginProtection().Handler(mux)
	h = headers(h)
	if IsLoopback(addr) {
		h = loopbackHostOnly(h)
	}
	return h, nil
}

// Wait waits for decisions the dashboard is still carrying out (rollbacks of held releases).
func (s *Server) Wait() { s.decisions.Wait() }

// IsLoopback reports whether addr (host:port) listens on loopback only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackHostOnly refuses requests whose Host is not a loopback name: a page of another site that
// re-points its own name at 127.0.0.1 (DNS rebinding) must not read the dashboard.
func loopbackHostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "rollguard dashboard answers only on a loopback address (127.0.0.1, [::1], localhost)", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// headers sets what every answer needs: no framing (clickjacking of the Approve button), no foreign
// scripts or styles (everything is embedded), no caching of cluster data, no referrer.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// csrfToken is the token every form carries: an HMAC of the form's action under the server's random
// key, so it cannot be guessed and is only valid for the action it was issued with.
func (s *Server) csrfToken(action string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(action))
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Server) validToken(action, token string) bool {
	return hmac.Equal([]byte(s.csrfToken(action)), []byte(token))
}

// remember keeps a notice for the next page view and returns its id.
func (s *Server) remember(n notice) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.notices) > 100 {
		clear(s.notices)
	}
	s.notices[id] = n
	return id
}

func (s *Server) recall(id string) *notice {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.notices[id]
	if !ok {
		return nil
	}
	return &n
}

// connectOnce keeps the first working connection: connecting pings the server and discovers its API,
// too much to repeat for every live update. A failure is not kept, so the next request tries again.
func connectOnce(connect action.Connector) action.Connector {
	var mu sync.Mutex
	var client *kube.Client
	return func(ctx context.Context) (*kube.Client, error) {
		mu.Lock()
		defer mu.Unlock()
		if client != nil {
			return client, nil
		}
		c, err := connect(ctx)
		if err != nil {
			return nil, err
		}
		client = c
		return c, nil
	}
}
