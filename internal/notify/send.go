package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Options tune delivery. The zero value is what the CLI uses.
type Options struct {
	// Attempts per event and target (default 4: the first and three retries).
	Attempts int
	// Backoff is the wait before the first retry, doubled before each next one (default 500ms).
	Backoff time.Duration
	// AttemptTimeout bounds one HTTP request (default 5s).
	AttemptTimeout time.Duration
	// FlushTimeout bounds how long Flush waits for deliveries still under way (default 10s).
	FlushTimeout time.Duration
	// Log receives one line per delivery that failed for good (target named, URL never). Nil: discard.
	Log *slog.Logger
	// Client sends the requests (default: a client without redirects, so a URL is never re-sent
	// somewhere else with its secret path in a Referer).
	Client *http.Client
}

// Notifier delivers events to its targets in the background. The nil *Notifier sends nothing, so
// actions call it unconditionally.
type Notifier struct {
	targets []Target
	opts    Options
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc

	mu     sync.Mutex
	failed int
}

// New returns a notifier for targets, or nil when there are none.
func New(targets []Target, opts Options) *Notifier {
	if len(targets) == 0 {
		return nil
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 4
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 500 * time.Millisecond
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 5 * time.Second
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 10 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	// Deliveries outlive the caller's context on purpose (a deploy's context ends when it returns); Flush
	// bounds them instead.
	ctx, cancel := context.WithCancel(context.Background())
	return &Notifier{targets: targets, opts: opts, ctx: ctx, cancel: cancel}
}

// Notify queues the event for every target and returns at once.
func (n *Notifier) Notify(e Event) {
	if n == nil {
		return
	}
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	if e.ID == "" {
		e.ID = e.Release + "/" + string(e.Kind)
	}
	for _, t := range n.targets {
		body, err := Payload(t.Format, e)
		if err != nil {
			n.fail(t, e, err)
			continue
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.deliver(t, body); err != nil {
				n.fail(t, e, err)
			}
		}()
	}
}

// Flush waits for deliveries under way, at most FlushTimeout, then abandons the rest. It returns how
// many deliveries failed or were abandoned.
func (n *Notifier) Flush() int {
	if n == nil {
		return 0
	}
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	t := time.NewTimer(n.opts.FlushTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		n.opts.Log.Warn("notifications still unsent; giving up", "after", n.opts.FlushTimeout)
		n.cancel()
		<-done
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.failed
}

func (n *Notifier) fail(t Target, e Event, err error) {
	n.mu.Lock()
	n.failed++
	n.mu.Unlock()
	n.opts.Log.Warn("notification not delivered", "target", t.String(), "event", string(e.Kind), "release", e.Release, "error", Redact(err.Error(), n.targets))
}

// deliver posts body with retries: network errors, 429 and 5xx are retried with exponential backoff
// (a Retry-After within the backoff cap is honoured); other answers are final.
func (n *Notifier) deliver(t Target, body []byte) error {
	wait := n.opts.Backoff
	var last error
	for attempt := 1; attempt <= n.opts.Attempts; attempt++ {
		if attempt > 1 {
			select {
			case <-n.ctx.Done():
				return fmt.Errorf("abandoned after %d attempts: %v", attempt-1, last)
			case <-time.After(wait):
			}
			wait *= 2
		}
		retry, after, err := n.post(t, body)
		if err == nil {
			return nil
		}
		last = err
		if !retry {
			return err
		}
		if after > wait && after <= 8*n.opts.Backoff {
			wait = after
		}
	}
	return fmt.Errorf("gave up after %d attempts: %v", n.opts.Attempts, last)
}

func (n *Notifier) post(t Target, body []byte) (retry bool, after time.Duration, err error) {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return false, 0, errors.New("building the request failed")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "rollguard")
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		// url.Error's text quotes the URL; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() != nil && n.ctx.Err() == nil {
			err = fmt.Errorf("no answer within %s", n.opts.AttemptTimeout)
		}
		return true, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, 0, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		s, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return true, time.Duration(s) * time.Second, fmt.Errorf("the receiver answered %s", resp.Status)
	}
	return false, 0, fmt.Errorf("the receiver answered %s (not retried: check the webhook)", resp.Status)
}
