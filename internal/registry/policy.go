package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/registry/lifecycle"
)

// PolicyOptions are the inputs of `images policy show|diff|apply`.
type PolicyOptions struct {
	Repository string
	// Policy is the file's policy and Text the file as written (what PutLifecyclePolicy sends); nil for show.
	Policy  *lifecycle.Policy
	Text    []byte
	Protect []Protection
	// Apply puts the policy on the repository when it differs — unless it would let ECR expire an image
	// rollguard protects and AllowExpiringProtected is false.
	Apply                  bool
	AllowExpiringProtected bool
	Now                    time.Time
}

// PolicyReport compares a repository's ECR lifecycle policy with a file, beside what rollguard's plan for that
// policy would do today.
type PolicyReport struct {
	Repository string `json:"repository"`
	// ARN is the repository's ARN as DescribeRepositories gives it: the account and region the policy is put in.
	ARN string `json:"arn"`
	// Current is the policy on ECR as ECR returns it; empty when the repository has none.
	Current string `json:"current"`
	// Changes from Current to the file, by rulePriority (empty for show, or when they are the same).
	Changes []lifecycle.Change `json:"changes"`
	// Decisions are rollguard's plan with the evaluated policy (the file's; for show, the current one) today.
	Decisions []lifecycle.Decision `json:"decisions"`
	// AtRisk are images that policy lets ECR expire although rollguard protects them: ECR's lifecycle run
	// does not know what a cluster runs or can roll back to.
	AtRisk  []lifecycle.Decision `json:"atRisk"`
	Applied bool                 `json:"applied"`
	Notes   []string             `json:"notes"`
}

// LifecyclePolicy reads the repository's lifecycle policy and images, evaluates the file's policy (or, without one,
// the current policy) with the protections, and with Apply puts the file's policy on the repository.
func LifecyclePolicy(ctx context.Context, c *Client, o PolicyOptions) (*PolicyReport, error) {
	repo, err := ParseRepository(o.Repository)
	if err != nil {
		return nil, err
	}
	if !c.usesECR(repo) {
		return nil, exitcode.BadInputf("%s is not an ECR repository: lifecycle policies are an ECR feature (ACCOUNT.dkr.ecr.REGION.amazonaws.com, or pass --registry-api ecr); on other registries run images prune --policy FILE",
			repo.Name())
	}
	e, err := c.openECR(ctx, repo)
	if err != nil {
		return nil, err
	}
	rep := &PolicyReport{Repository: repo.Name(), Changes: []lifecycle.Change{}, AtRisk: []lifecycle.Decision{}, Notes: e.notes()}
	if rep.ARN, err = e.arn(ctx); err != nil {
		return nil, err
	}
	if rep.Current, err = e.getPolicy(ctx); err != nil {
		return nil, err
	}
	var current *lifecycle.Policy
	if rep.Current != "" {
		if current, err = lifecycle.Parse([]byte(rep.Current)); err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the policy on ECR cannot be evaluated by rollguard (%v); every rule of the file counts as a change", err))
		}
	}
	evaluated := o.Policy
	if evaluated == nil {
		evaluated = current
	} else {
		rep.Changes = lifecycle.Diff(current, o.Policy)
	}
	if evaluated == nil {
		return rep, nil // show, and no policy to evaluate
	}
	listing, err := e.list(ctx)
	if err != nil {
		return nil, err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	protect, notes := resolveProtections(listing, o.Protect)
	rep.Notes = append(rep.Notes, notes...)
	rep.Decisions = evaluate(evaluated, listing, protect, now).Decisions
	for _, d := range rep.Decisions {
		// ECR itself refuses to delete a platform image an index references: not at risk.
		if _, platform := listing.Parents[d.Image.Digest]; platform {
			continue
		}
		if d.ByPolicy == lifecycle.Expire && d.Action == lifecycle.Protected {
			rep.AtRisk = append(rep.AtRisk, d)
		}
	}
	if !o.Apply || o.Policy == nil {
		return rep, nil
	}
	if len(rep.Changes) == 0 && current != nil {
		rep.Notes = append(rep.Notes, "the policy on ECR already says the same; nothing to apply")
		return rep, nil
	}
	if n := len(rep.AtRisk); n > 0 && !o.AllowExpiringProtected {
		return rep, exitcode.BadInputf("not applied: this policy lets ECR expire %d image(s) rollguard protects (first: %s, %s); ECR's own lifecycle run would delete them — keep more images in the rule, or pass --allow-expiring-protected",
			n, imageName(rep.AtRisk[0].Image), rep.AtRisk[0].Why)
	}
	if err := e.putPolicy(ctx, string(o.Text)); err != nil {
		return rep, err
	}
	rep.Applied = true
	return rep, nil
}

func imageName(img lifecycle.Image) string {
	if len(img.Tags) > 0 {
		return img.Tags[0]
	}
	return img.Digest
}

// getPolicy returns the lifecycle policy text; "" when the repository has none.
func (e *ecrRepo) getPolicy(ctx context.Context) (string, error) {
	out, err := e.api.GetLifecyclePolicy(ctx, &ecr.GetLifecyclePolicyInput{
		RegistryId: e.registryID, RepositoryName: aws.String(e.repo.RepositoryStr()),
	})
	var none *types.LifecyclePolicyNotFoundException
	if errors.As(err, &none) {
		return "", nil
	}
	if err != nil {
		return "", e.classify(err, "reading the lifecycle policy of")
	}
	return aws.ToString(out.LifecyclePolicyText), nil
}

func (e *ecrRepo) putPolicy(ctx context.Context, text string) error {
	_, err := e.api.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{
		RegistryId: e.registryID, RepositoryName: aws.String(e.repo.RepositoryStr()), LifecyclePolicyText: aws.String(text),
	})
	return e.classify(err, "putting the lifecycle policy of")
}

// arn checks the repository exists (DescribeRepositories) and returns its ARN.
func (e *ecrRepo) arn(ctx context.Context) (string, error) {
	out, err := e.api.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{
		RegistryId: e.registryID, RepositoryNames: []string{e.repo.RepositoryStr()},
	})
	if err != nil {
		return "", e.classify(err, "describing")
	}
	if len(out.Repositories) != 1 {
		return "", fmt.Errorf("describing %s: ECR returned %d repositories", e.repo.Name(), len(out.Repositories))
	}
	return aws.ToString(out.Repositories[0].RepositoryArn), nil
}
