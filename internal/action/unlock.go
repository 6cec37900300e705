package action

import (
	"context"

	"github.com/rollguard/rollguard/internal/config"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/lock"
)

// Unlock removes an app's deploy lock left by a run that died; a live holder notices, stops and records
// its release as superseded.
type Unlock struct {
	Connect   Connector
	Namespace string
	App       string
}

// UnlockResult says whose lock was removed; Holder is empty when the app was not locked.
type UnlockResult struct {
	App, Namespace, Holder string
}

// Run removes the lock.
func (u *Unlock) Run(ctx context.Context) (*UnlockResult, error) {
	if u.App == "" {
		return nil, exitcode.BadInputf("pass the app to unlock: rollguard unlock APP [-n NAMESPACE]")
	}
	c, err := u.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ns := u.Namespace
	if ns == "" {
		ns = c.Namespace
	}
	holder, err := lock.ForceUnlock(ctx, c, ns, u.App)
	if err != nil {
		return nil, err
	}
	return &UnlockResult{App: u.App, Namespace: ns, Holder: holder}, nil
}

// AccessApply enforces an environment's access policy without deploying.
type AccessApply struct {
	Config  *config.Config
	Env     string
	Connect EnvConnector
}

// Run applies the policy; it returns the environment, whose Access is nil when it has no policy (then
// nothing changed).
func (a *AccessApply) Run(ctx context.Context) (*config.Environment, error) {
	if a.Env == "" {
		return nil, exitcode.BadInputf("--env NAME is required")
	}
	env, err := a.Config.Env(a.Env)
	if err != nil {
		return nil, err
	}
	if env.Access == nil {
		return env, nil
	}
	c, err := a.Connect(ctx, env)
	if err != nil {
		return nil, err
	}
	if err := applyAccess(ctx, c, env); err != nil {
		return nil, err
	}
	return env, nil
}
