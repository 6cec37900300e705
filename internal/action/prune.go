package action

import (
	"context"
	"os"

	"github.com/rollguard/rollguard/internal/config"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/registry"
	"github.com/rollguard/rollguard/internal/registry/lifecycle"
)

// Prune is `rollguard images prune`: it evaluates an ECR lifecycle policy against a repository and deletes
// what it expires, never an image Protections names.
type Prune struct {
	// Registry opens the registry client (ECR or OCI, per --registry-api).
	Registry   func() (*registry.Client, error)
	Repository string
	// PolicyFile is the AWS ECR lifecycle policy document (JSON).
	PolicyFile string
	DryRun     bool
	Protections
}

// Run plans the prune and, unless DryRun, deletes what the plan expires. The report is returned whenever
// one was made, also with an error (a deletion that failed half-way).
func (p *Prune) Run(ctx context.Context) (*registry.Report, error) {
	if p.Repository == "" || p.PolicyFile == "" {
		return nil, exitcode.BadInputf("--repository and --policy are required")
	}
	policy, _, err := ReadPolicy(p.PolicyFile)
	if err != nil {
		return nil, err
	}
	repo, err := registry.ParseRepository(p.Repository)
	if err != nil {
		return nil, err
	}
	protections, err := p.Gather(ctx)
	if err != nil {
		return nil, err
	}
	client, err := p.Registry()
	if err != nil {
		return nil, err
	}
	return registry.Prune(ctx, client, registry.PruneOptions{
		Repository: repo.Name(), Policy: policy, Protect: protections, DryRun: p.DryRun,
	})
}

// LifecyclePolicy is `rollguard images policy show|diff|apply`: it compares a policy file with an ECR
// repository's own lifecycle policy beside rollguard's plan, and with Apply puts the file on the repository,
// refusing one that would let ECR expire an image Protections names unless AllowExpiringProtected.
type LifecyclePolicy struct {
	// Registry opens the registry client (ECR, per --registry-api).
	Registry func() (*registry.Client, error)
	// Verb is show, diff or apply.
	Verb       string
	Repository string
	// PolicyFile is the lifecycle policy document to compare (diff, apply); show takes none.
	PolicyFile             string
	AllowExpiringProtected bool
	Protections
}

// Run reads the repository's policy and plans; the report is returned whenever one was made, also with an
// error (a refused apply).
func (p *LifecyclePolicy) Run(ctx context.Context) (*registry.PolicyReport, error) {
	o := registry.PolicyOptions{Repository: p.Repository, Apply: p.Verb == "apply", AllowExpiringProtected: p.AllowExpiringProtected}
	switch {
	case p.Repository == "":
		return nil, exitcode.BadInputf("--repository is required")
	case p.Verb == "show" && p.PolicyFile != "":
		return nil, exitcode.BadInputf("show prints the policy on ECR; use diff to compare it with --policy %s", p.PolicyFile)
	case p.Verb != "show" && p.PolicyFile == "":
		return nil, exitcode.BadInputf("--policy FILE is required")
	case p.Verb != "show":
		var err error
		if o.Policy, o.Text, err = ReadPolicy(p.PolicyFile); err != nil {
			return nil, err
		}
	}
	var err error
	if o.Protect, err = p.Gather(ctx); err != nil {
		return nil, err
	}
	client, err := p.Registry()
	if err != nil {
		return nil, err
	}
	return registry.LifecyclePolicy(ctx, client, o)
}

// ReadPolicy reads and validates a lifecycle policy file; it returns the file's bytes too.
func ReadPolicy(file string) (*lifecycle.Policy, []byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, exitcode.BadInputf("reading policy: %v", err)
	}
	policy, err := lifecycle.Parse(data)
	if err != nil {
		return nil, nil, exitcode.BadInputf("policy %s: %v", file, err)
	}
	return policy, data, nil
}

// Protections say which images rollguard never deletes: those named, those the current kube context runs
// or can roll back to, and those the environments of a config run or recorded.
type Protections struct {
	Protect []string
	// InUse protects the images the current kube context runs or can roll back to (Connect's cluster).
	InUse bool
	// InUseAsked says --in-use-from-cluster was given explicitly; ClusterConfigured that a kubeconfig
	// context, --server or an in-cluster environment exists. With neither, the cluster is skipped and
	// Notice says so: a CI job that only holds registry credentials still prunes.
	InUseAsked, ClusterConfigured bool
	// AllNamespaces reads every namespace of the cluster instead of the context's.
	AllNamespaces bool
	Connect       Connector
	// Config, when set, protects what each of its environments runs or recorded (ConnectEnv reaches them).
	Config     *config.Config
	ConnectEnv EnvConnector
	// Notice receives one-line notes for people (stderr).
	Notice func(string)
}

// Gather collects the protections. A cluster that is configured but cannot be read stops (exit 4) rather
// than let a prune delete blind.
func (p *Protections) Gather(ctx context.Context) ([]registry.Protection, error) {
	var out []registry.Protection
	for _, ref := range p.Protect {
		out = append(out, registry.Protection{Ref: ref, Why: "--protect " + ref})
	}
	found, err := p.clusterImages(ctx)
	if err != nil {
		return nil, err
	}
	out = append(out, found...)
	if p.Config != nil {
		found, err := EnvironmentImages(ctx, p.Config, p.ConnectEnv)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	return out, nil
}

func (p *Protections) clusterImages(ctx context.Context) ([]registry.Protection, error) {
	if !p.InUse {
		return nil, nil
	}
	if !p.ClusterConfigured && !p.InUseAsked {
		if p.Notice != nil {
			p.Notice("no kubeconfig found; images in use in a cluster are not protected (pass --in-use-from-cluster=false to silence this)")
		}
		return nil, nil
	}
	c, err := p.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ns := c.Namespace
	if p.AllNamespaces {
		ns = ""
	}
	return registry.InUse(ctx, c, ns)
}
