package registry

import (
	"context"
	"regexp"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/registry/lifecycle"
)

// Registry APIs a repository can be read through (--registry-api).
const (
	// APIAuto picks ECR for ACCOUNT.dkr.ecr.REGION.amazonaws.com hosts and the OCI distribution API otherwise.
	APIAuto = "auto"
	APIOCI  = "oci"
	APIECR  = "ecr"
)

// ecrHost matches the host names of ECR private registries (also FIPS endpoints and the China partition).
var ecrHost = regexp.MustCompile(`^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$`)

// ParseAPI checks a --registry-api value.
func ParseAPI(s string) (string, error) {
	switch s {
	case "", APIAuto:
		return APIAuto, nil
	case APIOCI, APIECR:
		return s, nil
	}
	return "", exitcode.BadInputf("--registry-api %q: use auto, oci or ecr", s)
}

// backend is one repository seen through one registry API. Everything a prune promises (the plan, the
// protections, the re-check before deleting, the report) lives in Prune and is shared; a backend only lists,
// re-reads tags and deletes.
type backend interface {
	// list reads the repository's images with their tags and push times.
	list(ctx context.Context) (*Repository, error)
	// tagsNow returns where every tag points now; known are the tags the plan saw.
	tagsNow(ctx context.Context, known []string) (map[string]string, error)
	// remove deletes images by digest, oldest first. Images the registry declines one by one are returned
	// as refusals; err is for a failure that stops the run.
	remove(ctx context.Context, imgs []lifecycle.Image) (deleted []Deleted, refused []Refused, err error)
	// notes bound what the listing can tell (e.g. the OCI API has no push time).
	notes() []string
}

// Refused is an image the registry declined to delete, with its reason code as the registry gave it.
type Refused struct {
	Digest string   `json:"digest"`
	Tags   []string `json:"tags"`
	Code   string   `json:"code"`
	Reason string   `json:"reason"`
}

// open returns the backend for repo: ECR when --registry-api says so or the host is an ECR registry.
func (c *Client) open(ctx context.Context, repo name.Repository) (backend, error) {
	if c.usesECR(repo) {
		return c.openECR(ctx, repo)
	}
	return &ociRepo{c: c, repo: repo}, nil
}

// listRepository lists repo through its backend.
func (c *Client) listRepository(ctx context.Context, repo name.Repository) (*Repository, error) {
	b, err := c.open(ctx, repo)
	if err != nil {
		return nil, err
	}
	return b.list(ctx)
}

func (c *Client) usesECR(repo name.Repository) bool {
	switch c.API {
	case APIECR:
		return true
	case APIOCI:
		return false
	}
	return ecrHost.MatchString(repo.RegistryStr())
}

// ociRepo is a repository read through the OCI distribution API with go-containerregistry.
type ociRepo struct {
	c    *Client
	repo name.Repository
}

func (o *ociRepo) list(ctx context.Context) (*Repository, error) { return o.c.List(ctx, o.repo) }

func (o *ociRepo) notes() []string { return []string{NotePushTime, NoteUntagged} }

// tagsNow resolves the known tags again and any tag added since.
func (o *ociRepo) tagsNow(ctx context.Context, known []string) (map[string]string, error) {
	fresh, err := o.c.resolveTags(ctx, o.repo, known)
	if err != nil {
		return nil, err
	}
	more, err := o.c.puller.List(ctx, o.repo)
	if err != nil {
		return nil, classify(err, o.repo, "listing tags of")
	}
	var added []string
	for _, t := range more {
		if _, ok := fresh[t]; !ok {
			added = append(added, t)
		}
	}
	extra, err := o.c.resolveTags(ctx, o.repo, added)
	if err != nil {
		return nil, err
	}
	for t, d := range extra {
		fresh[t] = d
	}
	return fresh, nil
}

// remove deletes one manifest at a time; the distribution API has no batch delete.
func (o *ociRepo) remove(ctx context.Context, imgs []lifecycle.Image) ([]Deleted, []Refused, error) {
	var deleted []Deleted
	for _, img := range imgs {
		if err := o.c.Delete(ctx, o.repo, img.Digest); err != nil {
			return deleted, nil, err
		}
		deleted = append(deleted, Deleted{Digest: img.Digest, Tags: img.Tags})
	}
	return deleted, nil, nil
}
