package main

import (
	"github.com/spf13/pflag"

	"github.com/rollguard/rollguard/internal/notify"
)

// notifyFlags are --notify (repeatable) and, on deploy, --dashboard-url.
type notifyFlags struct {
	targets   []string
	dashboard string
}

func (n *notifyFlags) add(fs *pflag.FlagSet) {
	fs.StringArrayVar(&n.targets, "notify", nil, "send failures, approvals and rollbacks to a webhook, `[slack+|teams+|json+]URL` (format detected from the host when no prefix); repeatable. The URL is a secret: pass it from a CI secret variable")
}

func (n *notifyFlags) addDashboard(fs *pflag.FlagSet) {
	fs.StringVar(&n.dashboard, "dashboard-url", "http://127.0.0.1:8080", "base `URL` of `rollguard dashboard`, for the link in approval notifications (empty: no link)")
}

// notifier parses the targets (bad input, exit 3, before anything happens) plus those an environment
// adds, and returns the notifier (nil when there are none). The caller flushes it before exiting.
func (n *notifyFlags) notifier(g *globals, more []string) (*notify.Notifier, error) {
	targets, err := notify.Parse(append(append([]string(nil), n.targets...), more...))
	if err != nil {
		return nil, err
	}
	return notify.New(targets, notify.Options{Log: g.logger()}), nil
}
