package action

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/registry"
)

// Approval settings only mean something with --on-failure approve: given with another policy they are a
// mistake, refused before anything is read or connected.
func TestApprovalSettingsNeedApprove(t *testing.T) {
	for _, tc := range []struct {
		onFailure string
		explicit  string
		refused   bool
	}{
		{"rollback", SettingApprovalTimeout, true},
		{"hold", SettingApprovalTimeoutAction, true},
		{"approve", SettingApprovalTimeout, false},
		{"rollback", SettingTimeout, false},
	} {
		d := &Deploy{Watch: Watch{Timeout: time.Minute}, OnFailure: tc.onFailure, Files: []string{"/nonexistent/rollguard-test.yaml"},
			Explicit: func(s string) bool { return s == tc.explicit }}
		err := d.load(context.Background(), &State{})
		refused := err != nil && strings.Contains(err.Error(), "applies only with --on-failure approve")
		if refused != tc.refused || (refused && exitcode.Of(err) != exitcode.BadInput) {
			t.Errorf("--on-failure %s with --%s: %v (exit %d), refused %v, want %v", tc.onFailure, tc.explicit, err, exitcode.Of(err), refused, tc.refused)
		}
	}
}

// images policy checks its options before it reads the protections or opens the registry.
func TestLifecyclePolicyOptions(t *testing.T) {
	open := func() (*registry.Client, error) { t.Fatal("opened the registry"); return nil, nil }
	for _, p := range []LifecyclePolicy{
		{Verb: "show"},
		{Verb: "show", Repository: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web", PolicyFile: "policy.json"},
		{Verb: "diff", Repository: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web"},
		{Verb: "apply", Repository: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web", PolicyFile: "/nonexistent/policy.json"},
	} {
		p.Registry = open
		if _, err := p.Run(context.Background()); exitcode.Of(err) != exitcode.BadInput {
			t.Errorf("%+v: %v (exit %d), want bad input", p, err, exitcode.Of(err))
		}
	}
}
