package registry_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/registry"
	"github.com/rollguard/rollguard/internal/registry/ecrtest"
	"github.com/rollguard/rollguard/internal/registry/lifecycle"
)

// These tests run the real AWS SDK against ecrtest, a protocol test double of the ECR API on loopback (see its
// package comment for the AWS pages it follows).

func ecrRepo(t *testing.T, name string) (*ecrtest.Server, string) {
	t.Helper()
	srv := ecrtest.Start(t)
	srv.Env(t)
	srv.CreateRepository(name)
	return srv, srv.Host() + "/" + name
}

func mustPolicy(t *testing.T, rules ...string) *lifecycle.Policy {
	t.Helper()
	p, err := lifecycle.Parse([]byte(policy(rules...)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tagsLeft lists every tag the double still holds, sorted, and how many untagged images remain.
func tagsLeft(srv *ecrtest.Server, repo string) ([]string, int) {
	var tags []string
	untagged := 0
	for _, img := range srv.Images(repo) {
		tags = append(tags, img.Tags...)
		if len(img.Tags) == 0 {
			untagged++
		}
	}
	slices.Sort(tags)
	return tags, untagged
}

func hoursAgo(h int) time.Time { return time.Now().UTC().Add(-time.Duration(h) * time.Hour) }

// Tags pushed out of version order: a hotfix 1.0.2 pushed after 1.1.0. ECR's imagePushedAt, not the tag and
// not the image's created time, orders them, and `previous` is what the AWS CLI answers with
// --query 'sort_by(imageDetails,& imagePushedAt)[-2].imageTags[0]'.
func TestECRPushTimesAndPrevious(t *testing.T) {
	srv, repo := ecrRepo(t, "team/web")
	srv.Push("team/web", hoursAgo(50), "1.0.0")
	srv.Push("team/web", hoursAgo(40), "1.1.0")
	srv.Push("team/web", hoursAgo(30), "1.0.2") // hotfix of the old line, pushed later
	srv.Push("team/web", hoursAgo(20), "1.0.3")
	ctx := context.Background()

	prev, err := registry.Previous(ctx, client(t), repo, "")
	if err != nil {
		t.Fatal(err)
	}
	imgs := srv.Images("team/web")
	slices.SortFunc(imgs, func(a, b ecrtest.Image) int { return a.Pushed.Compare(b.Pushed) })
	jmes := imgs[len(imgs)-2] // sort_by(imageDetails, &imagePushedAt)[-2]
	if prev.Tag != jmes.Tags[0] || prev.Digest != jmes.Digest || prev.Tag != "1.0.2" {
		t.Errorf("previous %s (%s), want the AWS CLI's answer %s (%s)", prev.Tag, prev.Digest, jmes.Tags[0], jmes.Digest)
	}
	if d := prev.Pushed.Sub(jmes.Pushed); d > time.Millisecond || d < -time.Millisecond {
		t.Errorf("pushed %s, want imagePushedAt %s", prev.Pushed, jmes.Pushed)
	}
	if want := repo + ":1.0.2@" + jmes.Digest; prev.Reference != want {
		t.Errorf("reference %s, want %s", prev.Reference, want)
	}

	// The image pushed before the one running: by push time, whether the workload names a tag or a digest.
	for running, want := range map[string]string{repo + ":1.0.2": "1.1.0", repo + ":1.0.3": "1.0.2", repo + "@" + imgs[1].Digest: "1.0.0"} {
		got, err := registry.PreviousOf(ctx, client(t), running, "1.")
		if err != nil || got.Tag != want {
			t.Errorf("previous of %s: %+v, %v; want %s", running, got, err, want)
		}
	}
	if _, err := registry.PreviousOf(ctx, client(t), repo+":1.0.0", ""); exitcode.Of(err) != exitcode.BadInput {
		t.Errorf("previous of the oldest image: %v, want exit 3", err)
	}

	// Keep the two newest by push time: 1.0.2 and 1.0.3 stay although 1.1.0 is the higher version.
	rep, err := registry.Prune(ctx, client(t), registry.PruneOptions{Repository: repo,
		Policy: mustPolicy(t, rule(1, `"tagStatus": "tagged", "tagPrefixList": ["1."], "countType": "imageCountMoreThan", "countNumber": 2`))})
	if err != nil {
		t.Fatal(err)
	}
	if tags, _ := tagsLeft(srv, "team/web"); !slices.Equal(tags, []string{"1.0.2", "1.0.3"}) {
		t.Errorf("tags left %v, want [1.0.2 1.0.3]", tags)
	}
	if len(rep.Deleted) != 2 || !slices.Contains(rep.Notes, registry.NoteECR) || slices.Contains(rep.Notes, registry.NotePushTime) {
		t.Errorf("report: deleted %v, notes %v", rep.Deleted, rep.Notes)
	}
}

// Untagged images (pushed by digest, or left behind when a tag moved to a new push) are listed, counted and
// expired as ECR does — on the OCI path they are invisible.
func TestECRUntaggedRules(t *testing.T) {
	tests := []struct {
		name         string
		rules        []string
		wantTags     []string
		wantUntagged int
	}{{
		name:         "keep one untagged",
		rules:        []string{rule(1, `"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1`)},
		wantTags:     []string{"1.0.0", "1.0.1", "latest"},
		wantUntagged: 1,
	}, {
		name:         "untagged older than 2 days",
		rules:        []string{rule(1, `"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 2`)},
		wantTags:     []string{"1.0.0", "1.0.1", "latest"},
		wantUntagged: 1,
	}, {
		name: "any counts untagged images too",
		rules: []string{
			rule(1, `"tagStatus": "tagged", "tagPrefixList": ["1."], "countType": "imageCountMoreThan", "countNumber": 5`),
			rule(2, `"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 3`),
		},
		// rule 1 claims both tagged images; rule 2 counts them and keeps one untagged image beside them
		wantTags:     []string{"1.0.0", "1.0.1", "latest"},
		wantUntagged: 2,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, repo := ecrRepo(t, "team/api")
			srv.Push("team/api", hoursAgo(24*6))                  // pushed by digest
			srv.Push("team/api", hoursAgo(24*5), "latest")        // later untagged: latest moves on
			srv.Push("team/api", hoursAgo(24*4), "1.0.0")         //
			srv.Push("team/api", hoursAgo(24*3), "latest")        // later untagged too
			srv.Push("team/api", hoursAgo(24*1))                  // a recent untagged image
			srv.Push("team/api", hoursAgo(10), "1.0.1", "latest") //
			if _, untagged := tagsLeft(srv, "team/api"); untagged != 4 {
				t.Fatalf("setup: %d untagged images, want 4", untagged)
			}
			opts := registry.PruneOptions{Repository: repo, Policy: mustPolicy(t, tt.rules...), DryRun: true}
			dry, err := registry.Prune(context.Background(), client(t), opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, untagged := tagsLeft(srv, "team/api"); untagged != 4 || len(dry.Deleted) != 0 {
				t.Fatalf("dry run deleted something: %d untagged left, report %v", untagged, dry.Deleted)
			}
			opts.DryRun = false
			rep, err := registry.Prune(context.Background(), client(t), opts)
			if err != nil {
				t.Fatal(err)
			}
			tags, untagged := tagsLeft(srv, "team/api")
			if !slices.Equal(tags, tt.wantTags) || untagged != tt.wantUntagged {
				t.Errorf("left %v and %d untagged, want %v and %d", tags, untagged, tt.wantTags, tt.wantUntagged)
			}
			if n := dry.Decisions; len(rep.Deleted) != 4-tt.wantUntagged || len(n) != 6 {
				t.Errorf("deleted %d of %d images, want %d", len(rep.Deleted), len(n), 4-tt.wantUntagged)
			}
		})
	}
}

// Protected images — running (by tag or by the digest the kubelet reports, tagged or not) or a recorded
// rollback target — are never deleted, whatever the policy says; and a listing of more than one page (the
// SDK asks for 1000 per page) is read whole.
func TestECRProtectedNeverDeletedAcrossPages(t *testing.T) {
	srv, repo := ecrRepo(t, "team/big")
	var digests []string
	for i := range 1100 {
		tags := []string{fmt.Sprintf("b%04d", i)}
		if i%2 == 1 {
			tags = nil
		}
		digests = append(digests, srv.Push("team/big", hoursAgo(2000-i), tags...))
	}
	protect := []registry.Protection{
		{Ref: repo + ":b0000", Why: "running in pod prod/web-1"},
		{Ref: repo + "@" + digests[3], Why: "running in pod prod/worker-1"}, // untagged, pinned by digest
		{Ref: "b0010", Why: "rollback target of release web.v7"},
	}
	rep, err := registry.Prune(context.Background(), client(t), registry.PruneOptions{Repository: repo, Protect: protect,
		Policy: mustPolicy(t, rule(1, `"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5`))})
	if err != nil {
		t.Fatal(err)
	}
	// Two pages of 1000 for the plan; the re-check asks only for tagged images (550): one page.
	if calls := srv.Calls(); countOf(calls, "DescribeImages") != 3 {
		t.Errorf("calls %v: want two pages for the plan and one for the re-check of tagged images", calls)
	}
	if countOf(srv.Calls(), "BatchDeleteImage") != 11 {
		t.Errorf("want 1092 deletions in 11 batches of at most 100, calls %v", srv.Calls())
	}
	// A batch the SDK sent again after a lost response finds its images gone: the report lists them as
	// skipped, already gone, and never as failed.
	gone := len(rep.Deleted)
	for _, s := range rep.Skipped {
		if strings.HasPrefix(s.Why, "already gone") {
			gone++
		}
	}
	left := srv.Images("team/big")
	if len(left) != 8 || gone != 1092 || len(rep.Failed) != 0 {
		t.Fatalf("%d images left, %d deleted or already gone, %d failed; want 8 (5 newest + 3 protected), 1092 and 0", len(left), gone, len(rep.Failed))
	}
	for _, d := range []string{digests[0], digests[3], digests[10]} {
		if !slices.ContainsFunc(left, func(img ecrtest.Image) bool { return img.Digest == d }) {
			t.Errorf("protected image %s was deleted", d)
		}
	}
	protected := 0
	for _, d := range rep.Decisions {
		if d.Action == lifecycle.Protected {
			protected++
			if d.ByPolicy != lifecycle.Expire || !strings.Contains(d.Why, "running in pod") && !strings.Contains(d.Why, "rollback target") {
				t.Errorf("protected %v: by policy %s, why %q", d.Image.Tags, d.ByPolicy, d.Why)
			}
		}
	}
	if protected != 3 {
		t.Errorf("%d protected decisions, want 3", protected)
	}
}

func countOf(xs []string, x string) int {
	n := 0
	for _, s := range xs {
		if s == x {
			n++
		}
	}
	return n
}

// BatchDeleteImage answers per image: a failure is reported, the other images are still deleted, an image a
// manifest list references is skipped (ECR keeps a multi-platform image's platform manifests), and the run
// fails so a pipeline notices.
func TestECRBatchDeletePartialFailure(t *testing.T) {
	srv, repo := ecrRepo(t, "team/partial")
	a := srv.Push("team/partial", hoursAgo(50), "a")
	b := srv.Push("team/partial", hoursAgo(40), "b")
	c := srv.Push("team/partial", hoursAgo(30))
	srv.Push("team/partial", hoursAgo(20), "d")
	srv.Refuse(b, "KmsError")
	srv.Refuse(c, "ImageReferencedByManifestList")

	rep, err := registry.Prune(context.Background(), client(t), registry.PruneOptions{Repository: repo,
		Policy: mustPolicy(t, rule(1, `"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1`))})
	if err == nil || exitcode.Of(err) != exitcode.NotRecovered || !strings.Contains(err.Error(), "refused to delete 1 image(s)") || !strings.Contains(err.Error(), "KmsError") {
		t.Fatalf("error %v (exit %d), want the refusal reported with exit %d", err, exitcode.Of(err), exitcode.NotRecovered)
	}
	if len(rep.Deleted) != 1 || rep.Deleted[0].Digest != a {
		t.Errorf("deleted %v, want only %s", rep.Deleted, a)
	}
	if len(rep.Failed) != 1 || rep.Failed[0].Digest != b || rep.Failed[0].Code != "KmsError" || rep.Failed[0].Reason == "" || !slices.Equal(rep.Failed[0].Tags, []string{"b"}) {
		t.Errorf("failed %+v, want %s with KmsError and its reason", rep.Failed, b)
	}
	if len(rep.Skipped) != 1 || rep.Skipped[0].Digest != c || !strings.Contains(rep.Skipped[0].Why, "manifest list") {
		t.Errorf("skipped %+v, want %s referenced by a manifest list", rep.Skipped, c)
	}
	if tags, untagged := tagsLeft(srv, "team/partial"); !slices.Equal(tags, []string{"b", "d"}) || untagged != 1 {
		t.Errorf("left %v and %d untagged", tags, untagged)
	}
}

// Credentials AWS refuses, no credentials at all, and an endpoint nobody answers are exit 4 with one line
// naming the problem and never the secret; a missing repository is exit 3.
func TestECRCredentialsAndReachability(t *testing.T) {
	pol := mustPolicy(t, rule(1, `"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1`))
	prune := func(repo string) error {
		_, err := registry.Prune(context.Background(), client(t), registry.PruneOptions{Repository: repo, Policy: pol})
		return err
	}
	check := func(t *testing.T, err error, code int, says ...string) {
		t.Helper()
		if exitcode.Of(err) != code {
			t.Fatalf("error %v (exit %d), want exit %d", err, exitcode.Of(err), code)
		}
		msg := err.Error()
		for _, s := range says {
			if !strings.Contains(msg, s) {
				t.Errorf("message %q does not say %q", msg, s)
			}
		}
		if strings.Contains(msg, "\n") || strings.Contains(msg, "test-secret-never-printed") || strings.Contains(msg, "wrong-secret") {
			t.Errorf("message %q is not one line, or shows a secret", msg)
		}
	}
	t.Run("refused credentials", func(t *testing.T) {
		srv, repo := ecrRepo(t, "team/web")
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSOMEONEELSE")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
		check(t, prune(repo), exitcode.Unreachable, "AWS refused our credentials", "UnrecognizedClientException")
		_, err := registry.Previous(context.Background(), client(t), repo, "")
		check(t, err, exitcode.Unreachable, "AWS refused our credentials")
		if len(srv.Calls()) != 0 {
			t.Errorf("the double served refused calls: %v", srv.Calls())
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		_, repo := ecrRepo(t, "team/web")
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		check(t, prune(repo), exitcode.Unreachable, "no AWS credentials")
	})
	t.Run("unreachable endpoint", func(t *testing.T) {
		_, repo := ecrRepo(t, "team/web")
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		t.Setenv("AWS_ENDPOINT_URL_ECR", "http://"+addr)
		check(t, prune(repo), exitcode.Unreachable, "cannot reach ECR", "connection refused")
	})
	t.Run("missing repository", func(t *testing.T) {
		srv, _ := ecrRepo(t, "team/web")
		check(t, prune(srv.Host()+"/team/nope"), exitcode.BadInput, "repository team/nope not found")
	})
	t.Run("registry-api ecr for another host name uses the configured region and default registry", func(t *testing.T) {
		srv, _ := ecrRepo(t, "team/web")
		srv.Push("team/web", hoursAgo(2), "1")
		srv.Push("team/web", hoursAgo(1), "2")
		c := client(t)
		c.API = registry.APIECR
		prev, err := registry.Previous(context.Background(), c, "registry.example.com/team/web", "")
		if err != nil || prev.Tag != "1" {
			t.Fatalf("previous %+v, %v; want tag 1", prev, err)
		}
		t.Setenv("AWS_REGION", "")
		_, err = registry.Previous(context.Background(), c, "registry.example.com/team/web", "")
		check(t, err, exitcode.BadInput, "set AWS_REGION")
	})
}

// Multi-platform images on ECR: platform images are listed as untagged images of their own. Those of an index
// that stays are kept whatever an untagged rule says; those of an expired index go after it; a pod pinned to
// one platform's digest keeps the whole index.
func TestECRMultiPlatformImages(t *testing.T) {
	srv, repo := ecrRepo(t, "team/multi")
	old, oldKids := srv.PushIndex("team/multi", hoursAgo(50), 2, "1.0.0")
	pinned, pinnedKids := srv.PushIndex("team/multi", hoursAgo(30), 2, "1.0.1")
	stray := srv.Push("team/multi", hoursAgo(20))
	_, newKids := srv.PushIndex("team/multi", hoursAgo(10), 2, "1.0.2")
	pol := mustPolicy(t,
		rule(1, `"tagStatus": "tagged", "tagPrefixList": ["1."], "countType": "imageCountMoreThan", "countNumber": 1`),
		rule(2, `"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1`),
	)
	rep, err := registry.Prune(context.Background(), client(t), registry.PruneOptions{Repository: repo, Policy: pol,
		Protect: []registry.Protection{{Ref: repo + "@" + pinnedKids[0], Why: "running in pod prod/web-1 (linux/amd64)"}}})
	if err != nil {
		t.Fatalf("prune: %v (report %+v)", err, rep)
	}
	left := map[string]bool{}
	for _, img := range srv.Images("team/multi") {
		left[img.Digest] = true
	}
	for _, d := range append(append([]string{pinned}, pinnedKids...), newKids...) {
		if !left[d] {
			t.Errorf("%s (the pinned index or a platform image of a kept index) was deleted", d)
		}
	}
	// The policy review flags the pinned index, not the platform images ECR itself refuses to delete.
	text := policy(
		rule(1, `"tagStatus": "tagged", "tagPrefixList": ["1."], "countType": "imageCountMoreThan", "countNumber": 1`),
		rule(2, `"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1`),
	)
	review, err := registry.LifecyclePolicy(context.Background(), client(t), registry.PolicyOptions{Repository: repo, Policy: pol, Text: []byte(text),
		Protect: []registry.Protection{{Ref: repo + "@" + pinnedKids[0], Why: "running in pod prod/web-1 (linux/amd64)"}}})
	if err != nil || len(review.AtRisk) != 1 || review.AtRisk[0].Image.Digest != pinned {
		t.Errorf("at risk %+v, %v; want only the pinned index", review.AtRisk, err)
	}
	for _, d := range append([]string{old, stray}, oldKids...) {
		if left[d] {
			t.Errorf("%s should have been deleted (expired index, its platform images, a stray untagged image)", d)
		}
	}
	if len(rep.Skipped) != 0 || len(rep.Failed) != 0 || len(rep.Deleted) != 4 {
		t.Errorf("deleted %d, skipped %+v, failed %+v; want 4 deleted, none refused", len(rep.Deleted), rep.Skipped, rep.Failed)
	}
	for _, d := range rep.Decisions {
		if d.Image.Digest == newKids[0] && (d.Action != lifecycle.Protected || !strings.Contains(d.Why, "platform image of index 1.0.2")) {
			t.Errorf("platform image of 1.0.2: %s (%s)", d.Action, d.Why)
		}
	}
}
