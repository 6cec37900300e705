package lifecycle

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Image is one manifest in a repository, as ECR sees an image: a digest with all the tags pointing at it.
type Image struct {
	Digest string    `json:"digest"`
	Tags   []string  `json:"tags"`
	Pushed time.Time `json:"pushed"` // zero when unknown; such an image is never expired
}

// Protection keeps an image (by digest) whatever the policy says, with the reason shown in the plan.
type Protection struct {
	Digest string `json:"digest"`
	Why    string `json:"why"`
}

// Verdict is what the plan does with an image.
type Verdict string

const (
	Keep      Verdict = "keep"
	Expire    Verdict = "expire"
	Protected Verdict = "protected"
)

// Decision is the plan for one image.
type Decision struct {
	Image Image `json:"image"`
	// Rule is the rulePriority of the rule that claimed the image (the first, by priority, whose tagging
	// requirements it matches); 0 when no rule did, and the image is kept.
	Rule int `json:"rule,omitempty"`
	// ByPolicy is what ECR would do: keep or expire.
	ByPolicy Verdict `json:"byPolicy"`
	// Action is what rollguard does: ByPolicy, except that protected images are never expired.
	Action Verdict `json:"action"`
	// Why explains Action in a few words.
	Why string `json:"why"`
	// ProtectedBy lists the reasons the image is protected, if any.
	ProtectedBy []string `json:"protectedBy,omitempty"`
}

// Plan is the evaluation of a policy over a repository, newest image first.
type Plan struct {
	Decisions []Decision `json:"decisions"`
}

// Expired returns the decisions whose action is expire.
func (p *Plan) Expired() []Decision {
	var out []Decision
	for _, d := range p.Decisions {
		if d.Action == Expire {
			out = append(out, d)
		}
	}
	return out
}

// Count returns how many images get verdict v.
func (p *Plan) Count(v Verdict) int {
	n := 0
	for _, d := range p.Decisions {
		if d.Action == v {
			n++
		}
	}
	return n
}

// Dated reports whether t is a usable push time. Reproducible builds (ko, bazel, nix, buildkit with
// SOURCE_DATE_EPOCH=0) set the config's created time to the Unix epoch, which orders nothing.
func Dated(t time.Time) bool { return !t.IsZero() && t.Unix() > 0 }

// newestFirst orders images for count rules: newest push first; images with no known time first of all
// (they take a "keep" slot rather than push a known image out of one); ties by digest for determinism.
func newestFirst(a, b *Image) int {
	ka, kb := Dated(a.Pushed), Dated(b.Pushed)
	switch {
	case ka != kb:
		if !ka {
			return -1
		}
		return 1
	case !a.Pushed.Equal(b.Pushed):
		return b.Pushed.Compare(a.Pushed)
	}
	return cmp.Compare(a.Digest, b.Digest)
}

// Evaluate applies the policy to the images as ECR would, then lets protections veto expirations.
//
// ECR's evaluation rules, in order of priority (lowest rulePriority first):
//   - a rule selects the images matching its tagging requirements (tagStatus and tag lists), including images a
//     higher-priority rule has already claimed ("rules ... can still identify them as if they haven't been
//     expired"), and marks some of them: beyond the newest countNumber (imageCountMoreThan) or pushed more
//     than countNumber days before now (sinceImagePushed);
//   - an image is claimed by the first rule whose tagging requirements it matches, and only that rule's mark
//     counts: "An image that matches the tagging requirements of a rule cannot be expired by a rule with a
//     lower priority";
//   - images no rule selects are kept.
func Evaluate(p *Policy, images []Image, protections []Protection, now time.Time) *Plan {
	sorted := make([]*Image, len(images))
	for i := range images {
		sorted[i] = &images[i]
	}
	slices.SortFunc(sorted, newestFirst)

	type claim struct {
		rule   int
		expire bool
		age    string
	}
	claims := make(map[*Image]*claim, len(images))
	for ri := range p.Rules {
		r := &p.Rules[ri]
		cutoff := now.AddDate(0, 0, -r.Selection.CountNumber)
		seen := 0
		for _, img := range sorted {
			if !r.selects(img) {
				continue
			}
			seen++
			if claims[img] != nil {
				continue // claimed by a higher-priority rule, but counted above as ECR does
			}
			c := &claim{rule: r.RulePriority}
			if Dated(img.Pushed) {
				switch r.Selection.CountType {
				case ImageCountMoreThan:
					c.expire = seen > r.Selection.CountNumber
					c.age = fmt.Sprintf("newest #%d of %d kept", seen, r.Selection.CountNumber)
					if c.expire {
						c.age = fmt.Sprintf("newest #%d, beyond %d kept", seen, r.Selection.CountNumber)
					}
				case SinceImagePushed:
					c.expire = img.Pushed.Before(cutoff)
					c.age = fmt.Sprintf("pushed within %d days", r.Selection.CountNumber)
					if c.expire {
						c.age = fmt.Sprintf("pushed more than %d days ago", r.Selection.CountNumber)
					}
				}
			}
			claims[img] = c
		}
	}

	protect := make(map[string][]string, len(protections))
	for _, pr := range protections {
		if !slices.Contains(protect[pr.Digest], pr.Why) {
			protect[pr.Digest] = append(protect[pr.Digest], pr.Why)
		}
	}

	plan := &Plan{Decisions: make([]Decision, 0, len(sorted))}
	for _, img := range sorted {
		d := Decision{Image: *img, ByPolicy: Keep, Action: Keep, Why: "no rule selects it", ProtectedBy: protect[img.Digest]}
		if c := claims[img]; c != nil {
			d.Rule = c.rule
			d.Why = c.age
			if c.expire {
				d.ByPolicy, d.Action = Expire, Expire
			}
			if !Dated(img.Pushed) {
				d.Why = "no push or created time; never expired"
			}
		}
		if len(d.ProtectedBy) > 0 {
			d.Action = Protected
			d.Why = fmt.Sprintf("policy would %s; %s", d.ByPolicy, strings.Join(d.ProtectedBy, "; "))
		}
		plan.Decisions = append(plan.Decisions, d)
	}
	return plan
}

// selects reports whether the image meets the rule's tagging requirements.
func (r *Rule) selects(img *Image) bool {
	switch r.Selection.TagStatus {
	case Any:
		return true
	case Untagged:
		return len(img.Tags) == 0
	}
	if len(img.Tags) == 0 {
		return false
	}
	// "an image is successfully matched if all of the tags in the list are matched against any of the
	// image's tags".
	for _, prefix := range r.Selection.TagPrefixList {
		if !slices.ContainsFunc(img.Tags, func(t string) bool { return strings.HasPrefix(t, prefix) }) {
			return false
		}
	}
	for _, pat := range r.patterns {
		if !slices.ContainsFunc(img.Tags, pat.match) {
			return false
		}
	}
	return true
}

// Previous returns the image pushed before the newest one among images with a tag starting with prefix
// (every tagged image when prefix is empty), and that image's tags with the prefix, sorted. Images sharing
// the newest's digest are the newest, not the previous one. It refuses to guess: images without a known push
// time or two images pushed at the same instant are errors.
func Previous(images []Image, prefix string) (Image, []string, error) {
	var cands []*Image
	for i := range images {
		img := &images[i]
		if !slices.ContainsFunc(img.Tags, func(t string) bool { return strings.HasPrefix(t, prefix) }) {
			continue
		}
		if !Dated(img.Pushed) {
			return Image{}, nil, fmt.Errorf("image %s (%s) has no push or created time, so images cannot be ordered", img.Digest, strings.Join(img.Tags, ", "))
		}
		cands = append(cands, img)
	}
	what := "tagged images"
	if prefix != "" {
		what = fmt.Sprintf("images tagged with prefix %q", prefix)
	}
	if len(cands) < 2 {
		return Image{}, nil, fmt.Errorf("found %d %s; need at least 2 for a previous one", len(cands), what)
	}
	slices.SortFunc(cands, newestFirst)
	for i := 0; i < 2 && i+1 < len(cands); i++ {
		if cands[i].Pushed.Equal(cands[i+1].Pushed) {
			return Image{}, nil, fmt.Errorf("images %s and %s have the same push time %s; cannot tell which came first",
				cands[i].Digest, cands[i+1].Digest, cands[i].Pushed.UTC().Format(time.RFC3339))
		}
	}
	prev := *cands[1]
	var tags []string
	for _, t := range prev.Tags {
		if strings.HasPrefix(t, prefix) {
			tags = append(tags, t)
		}
	}
	slices.Sort(tags)
	return prev, tags, nil
}

// Before returns the image pushed immediately before the running one (by digest) among images with a tag
// starting with prefix, and that image's tags with the prefix, sorted: "the tag pushed before the one
// running". The running image need not carry the prefix. It refuses to guess, as Previous does: an image
// without a push time, or one pushed at the same instant as its neighbour, is an error.
func Before(images []Image, running, prefix string) (Image, []string, error) {
	var cur *Image
	var cands []*Image
	for i := range images {
		img := &images[i]
		if img.Digest == running {
			cur = img
			continue
		}
		if slices.ContainsFunc(img.Tags, func(t string) bool { return strings.HasPrefix(t, prefix) }) && Dated(img.Pushed) {
			cands = append(cands, img)
		}
	}
	if cur == nil {
		return Image{}, nil, fmt.Errorf("the running image %s is not in the repository (deleted, or pushed elsewhere)", running)
	}
	if !Dated(cur.Pushed) {
		return Image{}, nil, fmt.Errorf("the running image %s has no push or created time, so images cannot be ordered", running)
	}
	var prev *Image
	for _, c := range cands {
		if c.Pushed.Before(cur.Pushed) && (prev == nil || c.Pushed.After(prev.Pushed)) {
			prev = c
		}
	}
	for _, c := range cands {
		for _, n := range []*Image{cur, prev} {
			if n != nil && c != n && c.Pushed.Equal(n.Pushed) {
				return Image{}, nil, fmt.Errorf("images %s and %s have the same push time %s; cannot tell which came first",
					c.Digest, n.Digest, c.Pushed.UTC().Format(time.RFC3339))
			}
		}
	}
	if prev == nil {
		what := "tagged image"
		if prefix != "" {
			what = fmt.Sprintf("image tagged with prefix %q", prefix)
		}
		return Image{}, nil, fmt.Errorf("no %s was pushed before the running one (%s, pushed %s)", what, strings.Join(cur.Tags, ", "), cur.Pushed.UTC().Format(time.RFC3339))
	}
	var tags []string
	for _, t := range prev.Tags {
		if strings.HasPrefix(t, prefix) {
			tags = append(tags, t)
		}
	}
	slices.Sort(tags)
	return *prev, tags, nil
}
