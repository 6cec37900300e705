package action

import (
	"context"
	"fmt"

	"github.com/rollguard/rollguard/internal/access"
	"github.com/rollguard/rollguard/internal/config"
	"github.com/rollguard/rollguard/internal/kube"
)

// The deploy settings an environment of rollguard.yaml provides, named as their flags are.
const (
	SettingNamespace             = "namespace"
	SettingFiles                 = "filename"
	SettingApp                   = "app"
	SettingTimeout               = "timeout"
	SettingOnFailure             = "on-failure"
	SettingApprovalTimeout       = "approval-timeout"
	SettingApprovalTimeoutAction = "approval-timeout-action"
	SettingBake                  = "bake"
	SettingOnIrreversible        = "on-irreversible"
	SettingRequireProbes         = "require-probes"
)

// UseEnvironment fills the deploy from environment env of cfg — namespace, manifests, app, timeout,
// on-failure policy, approval and access policy — leaving the settings explicit says were given (by
// flag name, see Setting*). It is the one place `deploy --env` and `promote` resolve an environment's
// defaults. The access policy's kinds are checked right after connecting, before anything is recorded
// or applied, and the policy is enforced right after the release's objects are applied.
func (d *Deploy) UseEnvironment(cfg *config.Config, env *config.Environment, explicit func(setting string) bool) {
	if !explicit(SettingNamespace) {
		d.Namespace = env.Namespace
	}
	if !explicit(SettingFiles) && d.Objects == nil {
		d.Files = cfg.ManifestsOf(env)
	}
	if !explicit(SettingApp) {
		d.App = cfg.App
	}
	if !explicit(SettingTimeout) {
		d.Timeout = env.Timeout
	}
	if !explicit(SettingOnFailure) {
		d.OnFailure = env.OnFailure
	}
	if !explicit(SettingApprovalTimeout) {
		d.ApprovalTimeout = env.Approval.Timeout
	}
	if !explicit(SettingApprovalTimeoutAction) {
		d.ApprovalTimeoutAction = env.Approval.TimeoutAction
	}
	if !explicit(SettingBake) {
		d.Bake = env.Bake
	}
	if !explicit(SettingOnIrreversible) && env.OnIrreversible != "" {
		d.OnIrreversible = env.OnIrreversible
	}
	if !explicit(SettingRequireProbes) {
		d.RequireProbes = env.RequireProbes
	}
	d.Environment = env.Name
	if env.Access == nil {
		return
	}
	policy := *env.Access
	connect := d.Connect
	d.Connect = func(ctx context.Context) (*kube.Client, error) {
		c, err := connect(ctx)
		if err != nil {
			return nil, err
		}
		if err := access.Check(ctx, c, policy); err != nil {
			return nil, fmt.Errorf("environment %s: %w", env.Name, err)
		}
		return c, nil
	}
	d.AfterApply = func(ctx context.Context, c *kube.Client, ns string) error { return access.Apply(ctx, c, ns, policy) }
}

// applyAccess enforces env's access policy in its namespace.
func applyAccess(ctx context.Context, c *kube.Client, env *config.Environment) error {
	if err := access.Apply(ctx, c, env.Namespace, *env.Access); err != nil {
		return fmt.Errorf("environment %s: %w", env.Name, err)
	}
	return nil
}
