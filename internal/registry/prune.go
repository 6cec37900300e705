package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/registry/lifecycle"
)

// Protection keeps an image whatever the policy says.
type Protection struct {
	// Ref names the image: a full reference (REGISTRY/REPO:TAG or REGISTRY/REPO@sha256:...), or, relative to
	// the pruned repository, a bare tag or digest. References to other repositories are ignored.
	Ref string `json:"ref"`
	// Why is shown in the plan, e.g. "running in prod/web" or "rollback target of release 42".
	Why string `json:"why"`
}

// PruneOptions are the inputs of one prune.
type PruneOptions struct {
	Repository string
	Policy     *lifecycle.Policy
	Protect    []Protection
	DryRun     bool
	Now        time.Time // zero means time.Now()
}

// Report is the outcome of a prune: the plan and, for a real run, what was deleted.
type Report struct {
	Repository string               `json:"repository"`
	DryRun     bool                 `json:"dryRun"`
	Decisions  []lifecycle.Decision `json:"decisions"`
	Deleted    []Deleted            `json:"deleted"`
	Skipped    []Skipped            `json:"skipped,omitempty"`
	// Failed lists images the registry refused to delete, with its reason (ECR's BatchDeleteImage failures).
	Failed []Refused `json:"failed,omitempty"`
	Notes  []string  `json:"notes"`
}

// Deleted is a manifest the prune deleted, with the tags that went with it.
type Deleted struct {
	Digest string   `json:"digest"`
	Tags   []string `json:"tags"`
}

// Skipped is a manifest the plan expired but the prune left alone, and why.
type Skipped struct {
	Digest string `json:"digest"`
	Why    string `json:"why"`
}

// Notes every report carries, because they bound what a registry other than ECR can tell us.
const (
	NotePushTime = "pushed = the image config's created time: the OCI distribution API records no push time"
	NoteUntagged = "untagged manifests cannot be listed through the OCI distribution API; rules with tagStatus untagged select nothing here and untagged manifests are never deleted"
)

// Prune plans the policy over the repository and, unless DryRun, deletes the expired images. The same plan,
// protections and re-check serve every registry API; only listing and deleting differ (see backend).
//
// Deletion is by manifest digest, and the registry then drops every tag pointing at it. The plan works on
// digests (an ECR "image" is a digest with all its tags), so a digest that any kept or protected tag points to
// is kept as a whole. Right before deleting, tags are read again: a digest that gained a tag or a protection
// since planning (a retag for a rollback, say) is skipped, not deleted.
func Prune(ctx context.Context, c *Client, o PruneOptions) (*Report, error) {
	if o.Policy == nil {
		return nil, exitcode.BadInputf("no lifecycle policy given; pass --policy FILE")
	}
	repo, err := ParseRepository(o.Repository)
	if err != nil {
		return nil, err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	b, err := c.open(ctx, repo)
	if err != nil {
		return nil, err
	}
	listing, err := b.list(ctx)
	if err != nil {
		return nil, err
	}
	protect, notes := resolveProtections(listing, o.Protect)
	plan := evaluate(o.Policy, listing, protect, now)

	rep := &Report{
		Repository: repo.Name(),
		DryRun:     o.DryRun,
		Decisions:  plan.Decisions,
		Deleted:    []Deleted{},
		Notes:      append(b.notes(), notes...),
	}
	if n := len(listing.Undated); n > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d image(s) have no created time (or the 1970 epoch of reproducible builds) and are never expired", n))
	}
	expired := plan.Expired()
	if o.DryRun || len(expired) == 0 {
		return rep, nil
	}

	if c.afterPlan != nil {
		c.afterPlan()
	}
	// Read every tag again: the plan is only as good as the tags it saw.
	fresh, err := b.tagsNow(ctx, mapKeys(listing.Tags))
	if err != nil {
		return rep, err
	}
	current := &Repository{Name: repo, Tags: fresh, Parents: listing.Parents}
	protectNow, _ := resolveProtections(current, o.Protect)
	protectedNow := map[string]bool{}
	for _, p := range protectNow {
		protectedNow[p.Digest] = true
	}
	tagsNow := map[string][]string{}
	for t, d := range fresh {
		tagsNow[d] = append(tagsNow[d], t)
	}

	var doomed []lifecycle.Image
	for i := len(expired) - 1; i >= 0; i-- { // oldest first
		img := expired[i].Image
		if protectedNow[img.Digest] {
			rep.Skipped = append(rep.Skipped, Skipped{Digest: img.Digest, Why: "protected since planning"})
			continue
		}
		if extra := without(tagsNow[img.Digest], img.Tags); len(extra) > 0 {
			rep.Skipped = append(rep.Skipped, Skipped{Digest: img.Digest, Why: "tagged " + strings.Join(extra, ", ") + " since planning"})
			continue
		}
		doomed = append(doomed, img)
	}
	if len(doomed) == 0 {
		return rep, nil
	}
	// Indexes go before their platform images: a registry refuses to delete an image an index still lists.
	var platforms []lifecycle.Image
	doomed = slices.DeleteFunc(doomed, func(img lifecycle.Image) bool {
		_, child := listing.Parents[img.Digest]
		if child {
			platforms = append(platforms, img)
		}
		return child
	})
	var refusedAll []Refused
	for _, batch := range [][]lifecycle.Image{doomed, platforms} {
		if len(batch) == 0 {
			continue
		}
		deleted, refused, err := b.remove(ctx, batch)
		rep.Deleted = append(rep.Deleted, deleted...)
		refusedAll = append(refusedAll, refused...)
		if err != nil {
			return rep, err
		}
	}
	return rep, rep.addRefusals(refusedAll)
}

// evaluate plans the policy over the listing with the protections, and keeps every platform image of an
// index that stays: deleting one would break the multi-platform image (ECR refuses with
// ImageReferencedByManifestList). Only the ECR path lists platform images; on the OCI path they are unseen.
func evaluate(p *lifecycle.Policy, listing *Repository, protect []lifecycle.Protection, now time.Time) *lifecycle.Plan {
	plan := lifecycle.Evaluate(p, listing.Images, protect, now)
	if len(listing.Parents) == 0 {
		return plan
	}
	byDigest := map[string]lifecycle.Decision{}
	for _, d := range plan.Decisions {
		byDigest[d.Image.Digest] = d
	}
	var extra []lifecycle.Protection
	for _, child := range mapKeys(listing.Parents) {
		parent, listed := byDigest[listing.Parents[child]]
		if _, ok := byDigest[child]; ok && listed && parent.Action != lifecycle.Expire {
			extra = append(extra, lifecycle.Protection{Digest: child, Why: "platform image of index " + imageName(parent.Image) + ", which stays"})
		}
	}
	if len(extra) == 0 {
		return plan
	}
	return lifecycle.Evaluate(p, listing.Images, append(slices.Clone(protect), extra...), now)
}

// addRefusals reports images the registry declined to delete. An image already gone, or one a manifest list
// still references (ECR keeps the platform images of a multi-platform index), is skipped: nothing is wrong.
// Any other refusal is a failure of the run, after every other image was deleted.
func (rep *Report) addRefusals(refused []Refused) error {
	for _, r := range refused {
		switch r.Code {
		case "ImageNotFound":
			rep.Skipped = append(rep.Skipped, Skipped{Digest: r.Digest, Why: "already gone (" + r.Code + ")"})
		case "ImageReferencedByManifestList":
			rep.Skipped = append(rep.Skipped, Skipped{Digest: r.Digest, Why: "a manifest list still references it (" + r.Code + ")"})
		default:
			rep.Failed = append(rep.Failed, r)
		}
	}
	if n := len(rep.Failed); n > 0 {
		first := rep.Failed[0]
		return fmt.Errorf("the registry refused to delete %d image(s), e.g. %s: %s: %s (all listed under failed)", n, first.Digest, first.Code, first.Reason)
	}
	return nil
}

// resolveProtections turns references into digests of this repository, through the listing (no requests).
// It returns a note for each explicit reference to this repository that names nothing in it.
func resolveProtections(r *Repository, ps []Protection) ([]lifecycle.Protection, []string) {
	var out []lifecycle.Protection
	var notes []string
	for _, p := range ps {
		ref, ok := refIn(r.Name, p.Ref)
		if !ok {
			continue
		}
		d, found := r.digestOf(ref)
		if !found {
			notes = append(notes, fmt.Sprintf("protection %s (%s) names no tag of %s; nothing to protect", p.Ref, p.Why, r.Name.Name()))
			continue
		}
		out = append(out, lifecycle.Protection{Digest: d, Why: p.Why})
	}
	return out, notes
}

// refIn parses s as a reference into repo; ok is false for references to other repositories or that do not
// parse (a cluster holds images of every repository).
func refIn(repo name.Repository, s string) (name.Reference, bool) {
	s = strings.TrimPrefix(s, "docker-pullable://")
	switch {
	case strings.HasPrefix(s, "sha256:"):
		d, err := name.NewDigest(repo.Name() + "@" + s)
		return d, err == nil
	case !strings.Contains(s, "/"):
		t, err := name.NewTag(repo.Name() + ":" + s)
		return t, err == nil
	}
	ref, err := name.ParseReference(s)
	if err != nil || ref.Context().Name() != repo.Name() {
		return nil, false
	}
	return ref, true
}

func mapKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// without returns the elements of a not in b.
func without(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}
