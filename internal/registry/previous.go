package registry

import (
	"context"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/registry/lifecycle"
)

// PreviousImage is the image pushed before the newest one.
type PreviousImage struct {
	Repository string    `json:"repository"`
	Tag        string    `json:"tag"`
	Tags       []string  `json:"tags"`
	Digest     string    `json:"digest"`
	Pushed     time.Time `json:"pushed"`
	// Reference pins the tag to the digest (REPO:TAG@DIGEST), what a rollback should deploy.
	Reference string `json:"reference"`
}

// Previous finds the image pushed before the newest among tags starting with prefix, for pipelines that roll
// back by tag. When that image has several such tags, Tag is the first in sort order and Tags has them all.
func Previous(ctx context.Context, c *Client, repository, prefix string) (*PreviousImage, error) {
	repo, err := ParseRepository(repository)
	if err != nil {
		return nil, err
	}
	listing, err := c.listRepository(ctx, repo)
	if err != nil {
		return nil, err
	}
	img, tags, err := lifecycle.Previous(listing.Images, prefix)
	if err != nil {
		return nil, exitcode.BadInputf("no previous image in %s: %v", repo.Name(), err)
	}
	return previousImage(repo, img, tags), nil
}

// PreviousOf finds the image pushed before the running one — image is the reference a workload runs
// (REPO:TAG, REPO@DIGEST or REPO:TAG@DIGEST) — among tags starting with prefix: what a one-step rollback to
// the previous image deploys. A tag is resolved through the repository's listing now; a digest in the
// reference wins, since a tag can move after a workload was deployed.
func PreviousOf(ctx context.Context, c *Client, image, prefix string) (*PreviousImage, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, exitcode.BadInputf("image %q: %v", image, err)
	}
	repo := ref.Context()
	listing, err := c.listRepository(ctx, repo)
	if err != nil {
		return nil, err
	}
	running, ok := pinnedDigest(image)
	if !ok {
		if running, ok = listing.digestOf(ref); !ok {
			return nil, exitcode.BadInputf("the running image %s is not in %s (tag deleted?); deploy a tag explicitly", image, repo.Name())
		}
	}
	img, tags, err := lifecycle.Before(listing.Images, running, prefix)
	if err != nil {
		return nil, exitcode.BadInputf("no previous image for %s in %s: %v", image, repo.Name(), err)
	}
	return previousImage(repo, img, tags), nil
}

// pinnedDigest returns the digest of a REPO@DIGEST or REPO:TAG@DIGEST reference.
func pinnedDigest(image string) (string, bool) {
	_, d, ok := strings.Cut(image, "@")
	return d, ok && strings.HasPrefix(d, "sha256:")
}

func previousImage(repo name.Repository, img lifecycle.Image, tags []string) *PreviousImage {
	return &PreviousImage{
		Repository: repo.Name(),
		Tag:        tags[0],
		Tags:       tags,
		Digest:     img.Digest,
		Pushed:     img.Pushed,
		Reference:  repo.Tag(tags[0]).String() + "@" + img.Digest,
	}
}
