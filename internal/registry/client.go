// Package registry applies retention to OCI image registries through go-containerregistry: it lists a
// repository's images, resolves protections to digests, plans with package lifecycle and deletes manifests.
// Credentials come from the docker config and its credential helpers (authn.DefaultKeychain), as for docker
// and crane.
package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/registry/lifecycle"
)

// createdAnnotation is the OCI annotation some builders set on manifests; used when the config has no time.
const createdAnnotation = "org.opencontainers.image.created"

// Client talks to registries.
type Client struct {
	puller *remote.Puller
	pusher *remote.Pusher
	jobs   int
	// API is --registry-api: APIAuto (or "") picks ECR by host name, APIECR or APIOCI force one.
	API string
	// afterPlan, when set, runs between planning and the re-check before deleting (tests move tags there).
	afterPlan func()
}

// NewClient returns a client that authenticates with the docker config and credential helpers; opts are
// added after (tests pass none; a caller may pass remote.WithTransport for a proxy or custom CA).
func NewClient(opts ...remote.Option) (*Client, error) {
	all := append([]remote.Option{
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithUserAgent("rollguard"),
	}, opts...)
	puller, err := remote.NewPuller(all...)
	if err != nil {
		return nil, fmt.Errorf("configuring registry client: %w", err)
	}
	pusher, err := remote.NewPusher(append(all, remote.Reuse(puller))...)
	if err != nil {
		return nil, fmt.Errorf("configuring registry client: %w", err)
	}
	return &Client{puller: puller, pusher: pusher, jobs: 8}, nil
}

// Repository is what a listing found: the repository's tagged images with their tags and times.
type Repository struct {
	Name   name.Repository
	Images []lifecycle.Image
	// Tags maps each tag to its manifest digest.
	Tags map[string]string
	// Parents maps a platform manifest's digest to the digest of the tagged index that holds it, so a pod
	// pinned to one platform's digest protects the index it came from.
	Parents map[string]string
	// Undated lists digests for which no time could be found (never expired, and named in the plan).
	Undated []string
}

// ParseRepository parses REGISTRY/REPO; a tag or digest on it is bad input, and so is a repository without
// its registry: "web" would otherwise quietly mean Docker Hub's index.docker.io/library/web.
func ParseRepository(s string) (name.Repository, error) {
	if _, err := name.NewRepository(s, name.StrictValidation); err != nil && !strings.ContainsAny(s, "@:") {
		if first, _, _ := strings.Cut(s, "/"); !strings.ContainsAny(first, ".:") && first != "localhost" {
			return name.Repository{}, exitcode.BadInputf("repository %q names no registry: use REGISTRY/REPO, e.g. ghcr.io/acme/web, or docker.io/library/%s for Docker Hub", s, s)
		}
	}
	r, err := name.NewRepository(s)
	if err != nil {
		return name.Repository{}, exitcode.BadInputf("repository %q: %v; use REGISTRY/REPO, e.g. ghcr.io/acme/web", s, err)
	}
	return r, nil
}

// List reads every tag of repo, resolves each to its manifest digest and reads each manifest's time.
// Untagged manifests cannot be listed through the distribution API, so they are not in the result.
func (c *Client) List(ctx context.Context, repo name.Repository) (*Repository, error) {
	tags, err := c.puller.List(ctx, repo)
	if err != nil {
		return nil, classify(err, repo, "listing tags of")
	}
	tagDigest, err := c.resolveTags(ctx, repo, tags)
	if err != nil {
		return nil, err
	}
	byDigest := map[string][]string{}
	for _, tag := range tags {
		if d, ok := tagDigest[tag]; ok {
			byDigest[d] = append(byDigest[d], tag)
		}
	}
	out := &Repository{Name: repo, Tags: tagDigest, Parents: map[string]string{}}
	digests := make([]string, 0, len(byDigest))
	for d := range byDigest {
		digests = append(digests, d)
	}
	slices.Sort(digests)
	out.Images = make([]lifecycle.Image, len(digests))
	children := make([][]string, len(digests))

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.jobs)
	for i, d := range digests {
		g.Go(func() error {
			pushed, kids, err := c.inspect(gctx, repo, d)
			if err != nil {
				return err
			}
			tags := byDigest[d]
			slices.Sort(tags)
			out.Images[i] = lifecycle.Image{Digest: d, Tags: tags, Pushed: pushed}
			children[i] = kids
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, d := range digests {
		for _, k := range children[i] {
			out.Parents[k] = d
		}
		if !lifecycle.Dated(out.Images[i].Pushed) {
			out.Undated = append(out.Undated, d)
		}
	}
	return out, nil
}

// resolveTags HEADs every tag (HEAD is cheap and does not count against Docker Hub's pull limit). A tag deleted
// between listing and HEAD is left out.
func (c *Client) resolveTags(ctx context.Context, repo name.Repository, tags []string) (map[string]string, error) {
	var mu sync.Mutex
	out := make(map[string]string, len(tags))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.jobs)
	for _, tag := range tags {
		g.Go(func() error {
			desc, err := c.puller.Head(gctx, repo.Tag(tag))
			if isNotFound(err) {
				return nil
			}
			if err != nil {
				return classify(err, repo, "resolving tag "+tag+" of")
			}
			mu.Lock()
			out[tag] = desc.Digest.String()
			mu.Unlock()
			return nil
		})
	}
	return out, g.Wait()
}

// inspect reads a manifest's time: the image config's created time (the distribution API has no push time),
// else the manifest's org.opencontainers.image.created annotation. For an index it uses its first image
// manifest and returns the digests of its children.
func (c *Client) inspect(ctx context.Context, repo name.Repository, digest string) (time.Time, []string, error) {
	ref := repo.Digest(digest)
	desc, err := c.puller.Get(ctx, ref)
	if err != nil {
		return time.Time{}, nil, classify(err, repo, "reading manifest "+digest+" of")
	}
	if desc.MediaType.IsIndex() {
		im, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
		if err != nil {
			return time.Time{}, nil, nil // unreadable index: no time, so never expired
		}
		var kids []string
		var pushed time.Time
		for _, m := range im.Manifests {
			kids = append(kids, m.Digest.String())
			if pushed.IsZero() && m.MediaType.IsImage() {
				pushed, _, err = c.inspect(ctx, repo, m.Digest.String())
				if err != nil {
					return time.Time{}, nil, err
				}
			}
		}
		if t, ok := annotated(im.Annotations); ok && pushed.IsZero() {
			pushed = t
		}
		return pushed, kids, nil
	}
	img, err := desc.Image()
	if err != nil {
		// Not an image we can read (a schema 1 manifest, an unknown artifact): no time, so never expired.
		return time.Time{}, nil, nil
	}
	// An artifact whose config is not an image config has no created time; that is not an error.
	if cf, err := img.ConfigFile(); err == nil && !cf.Created.IsZero() {
		return cf.Created.UTC(), nil, nil
	}
	if m, err := img.Manifest(); err == nil {
		if t, ok := annotated(m.Annotations); ok {
			return t, nil, nil
		}
	}
	return time.Time{}, nil, nil
}

func annotated(a map[string]string) (time.Time, bool) {
	if s, ok := a[createdAnnotation]; ok {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// Resolve returns the digest a reference points to now.
func (c *Client) Resolve(ctx context.Context, ref name.Reference) (string, error) {
	if d, ok := ref.(name.Digest); ok {
		return d.DigestStr(), nil
	}
	desc, err := c.puller.Head(ctx, ref)
	if err != nil {
		return "", classify(err, ref.Context(), "resolving "+ref.String()+" in")
	}
	return desc.Digest.String(), nil
}

// Delete deletes a manifest by digest (the registry drops every tag pointing at it).
func (c *Client) Delete(ctx context.Context, repo name.Repository, digest string) error {
	if err := c.pusher.Delete(ctx, repo.Digest(digest)); err != nil {
		var te *transport.Error
		if errors.As(err, &te) && (te.StatusCode == http.StatusMethodNotAllowed || hasCode(te, transport.UnsupportedErrorCode)) {
			return exitcode.BadInputf("registry %s does not allow deleting manifests (HTTP %d); on distribution set storage.delete.enabled: true",
				repo.RegistryStr(), te.StatusCode)
		}
		return classify(err, repo, "deleting "+digest+" from")
	}
	return nil
}

func hasCode(te *transport.Error, code transport.ErrorCode) bool {
	for _, d := range te.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// classify turns a registry error into a one-line error with the exit code a pipeline can branch on:
// unreachable or refused credentials → 4; no such repository → 3.
func classify(err error, repo name.Repository, doing string) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	reg := repo.RegistryStr()
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			return exitcode.Unreachablef("registry %s refused our credentials while %s %s (HTTP %d); log in with docker login or configure a credential helper",
				reg, doing, repo, te.StatusCode)
		case te.StatusCode == http.StatusNotFound && (hasCode(te, transport.NameUnknownErrorCode) || doing == "listing tags of"):
			return exitcode.BadInputf("repository %s not found on %s; check --repository", repo.RepositoryStr(), reg)
		}
		return fmt.Errorf("%s %s: %w", doing, repo, err)
	}
	var ne net.Error
	var ue *url.Error
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &oe) || errors.As(err, &de) || errors.As(err, &ne) || errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) {
		return exitcode.Unreachablef("cannot reach registry %s: %v", reg, rootCause(err))
	}
	return fmt.Errorf("%s %s: %w", doing, repo, err)
}

// rootCause keeps the message short: the innermost network error says what happened ("connection refused").
func rootCause(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return de
	}
	return err
}

// digestOf returns the manifest digest of an image reference's content in this repository listing, resolving
// tags through the listing (no request) and platform manifests to their index.
func (r *Repository) digestOf(ref name.Reference) (string, bool) {
	var d string
	switch ref := ref.(type) {
	case name.Digest:
		d = ref.DigestStr()
	case name.Tag:
		var ok bool
		if d, ok = r.Tags[ref.TagStr()]; !ok {
			return "", false
		}
	}
	if p, ok := r.Parents[d]; ok {
		return p, true
	}
	return d, true
}
