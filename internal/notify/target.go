package notify

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/rollguard/rollguard/internal/exitcode"
)

// Format is how a target wants its payload.
type Format string

const (
	Slack Format = "slack"
	Teams Format = "teams"
	JSON  Format = "json"
)

// Target is one webhook. Its URL is a secret: String never shows it.
type Target struct {
	Format Format
	// N is the target's position among those given (1-based), used to name it in messages.
	N   int
	url string
}

// String names the target without its URL: "slack webhook #1".
func (t Target) String() string { return fmt.Sprintf("%s webhook #%d", t.Format, t.N) }

// Parse reads the notification targets given as [FORMAT+]URL, where FORMAT is slack, teams or json.
// Without a prefix the format follows from the host: hooks.slack.com is Slack; Teams workflow hosts
// (*.logic.azure.com, *.powerplatform.com, *.webhook.office.com) are Teams; anything else gets the generic
// JSON. Errors are bad input (exit 3) and name the target by its position, never by its URL.
func Parse(specs []string) ([]Target, error) {
	out := make([]Target, 0, len(specs))
	for i, s := range specs {
		t, err := parseOne(strings.TrimSpace(s), i+1)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func parseOne(spec string, n int) (Target, error) {
	const want = "expected [slack+|teams+|json+]https://HOST/PATH"
	t := Target{N: n}
	if prefix, rest, ok := strings.Cut(spec, "+"); ok && !strings.Contains(prefix, ":") && !strings.Contains(prefix, "/") {
		switch f := Format(strings.ToLower(prefix)); f {
		case Slack, Teams, JSON:
			t.Format, spec = f, rest
		default:
			// The prefix is not the secret part of a URL, so it may be named; the rest is not shown.
			return t, exitcode.BadInputf("notify target #%d: unknown format %q: use slack, teams or json (%s)", n, prefix, want)
		}
	}
	u, err := url.Parse(spec)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return t, exitcode.BadInputf("notify target #%d: not a valid URL (%s)", n, want)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return t, exitcode.BadInputf("notify target #%d: scheme %q is not http or https (%s)", n, u.Scheme, want)
	}
	if u.User != nil {
		return t, exitcode.BadInputf("notify target #%d: credentials in the URL's user part are not supported; webhooks carry their secret in the path", n)
	}
	if t.Format == "" {
		t.Format = detect(u.Hostname())
	}
	t.url = u.String()
	return t, nil
}

func detect(host string) Format {
	host = strings.ToLower(host)
	switch {
	case host == "hooks.slack.com":
		return Slack
	case strings.HasSuffix(host, ".logic.azure.com"), strings.HasSuffix(host, ".powerplatform.com"),
		strings.HasSuffix(host, ".webhook.office.com"), strings.HasSuffix(host, ".powerautomate.com"):
		return Teams
	}
	return JSON
}

// Redact replaces every target URL that occurs in s by the target's name, for the rare message (an
// error from a library) that could carry one.
func Redact(s string, targets []Target) string {
	for _, t := range targets {
		if t.url != "" {
			s = strings.ReplaceAll(s, t.url, "<"+t.String()+">")
		}
	}
	return s
}
