package registry_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/registry"
	"github.com/rollguard/rollguard/internal/registry/lifecycle"
	"github.com/rollguard/rollguard/internal/registry/registrytest"
)

func daysAgo(d int) time.Time {
	return time.Now().UTC().Truncate(time.Second).AddDate(0, 0, -d)
}

// push describes one image to push: its tags (none = pushed by digest only) and age.
type push struct {
	tags []string
	days int
	// index, when > 0, pushes a multi-platform index of that many images instead of one image.
	index int
}

func rule(prio int, sel string) string {
	return fmt.Sprintf(`{"rulePriority": %d, "selection": {%s}, "action": {"type": "expire"}}`, prio, sel)
}

func policy(rules ...string) string { return `{"rules": [` + strings.Join(rules, ",") + `]}` }

func client(t *testing.T) *registry.Client {
	t.Helper()
	c, err := registry.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// remaining lists the repository's tags, sorted.
func remaining(t *testing.T, repo name.Repository) []string {
	t.Helper()
	tags, err := remote.List(repo)
	if err != nil {
		t.Fatalf("listing %s: %v", repo, err)
	}
	slices.Sort(tags)
	return tags
}

func TestPrune(t *testing.T) {
	srv := registrytest.Start(t)
	ctx := context.Background()

	releases := []push{
		{tags: []string{"1.0.0"}, days: 70},
		{tags: []string{"1.0.1"}, days: 60},
		{tags: []string{"1.0.2"}, days: 50},
		{tags: []string{"1.0.3"}, days: 40},
		{tags: []string{"1.0.4", "latest"}, days: 30},
		{tags: []string{"dev-a"}, days: 45},
		{tags: []string{"dev-b"}, days: 5},
		{days: 20}, // untagged: invisible to the distribution API
	}
	tests := []struct {
		name   string
		pushes []push
		policy string
		// protect names images by the index of their push; a negative index -i-1 protects a platform
		// manifest (the first child) of index push i.
		protect []int
		want    []string // tags left after a real run
	}{{
		name:   "imageCountMoreThan on a tag prefix; latest shares 1.0.4's digest",
		pushes: releases,
		policy: policy(rule(1, `"tagStatus": "tagged", "tagPrefixList": ["1.0."], "countType": "imageCountMoreThan", "countNumber": 2`)),
		want:   []string{"1.0.3", "1.0.4", "dev-a", "dev-b", "latest"},
	}, {
		name:   "sinceImagePushed on a tag pattern",
		pushes: releases,
		policy: policy(rule(1, `"tagStatus": "tagged", "tagPatternList": ["dev-*"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 10`)),
		want:   []string{"1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4", "dev-b", "latest"},
	}, {
		name:   "a higher-priority rule shields what it matches from a lower one",
		pushes: releases,
		policy: policy(
			rule(1, `"tagStatus": "tagged", "tagPatternList": ["1.0.*"], "countType": "imageCountMoreThan", "countNumber": 3`),
			rule(2, `"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1`),
		),
		// rule 1 keeps 1.0.2-1.0.4 and rule 2 cannot expire them; rule 2 expires every dev image
		want: []string{"1.0.2", "1.0.3", "1.0.4", "latest"},
	}, {
		name:   "priority order, not document order",
		pushes: releases,
		policy: policy(
			rule(9, `"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1`),
			rule(3, `"tagStatus": "tagged", "tagPrefixList": ["dev-"], "countType": "imageCountMoreThan", "countNumber": 5`),
		),
		want: []string{"dev-a", "dev-b"},
	}, {
		name:   "any count: only tagged images are visible, untagged is never deleted",
		pushes: releases,
		policy: policy(rule(1, `"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 2`)),
		want:   []string{"1.0.4", "dev-b", "latest"},
	}, {
		name:   "untagged rule selects nothing a registry can list",
		pushes: releases,
		policy: policy(rule(1, `"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1`)),
		want:   []string{"1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4", "dev-a", "dev-b", "latest"},
	}, {
		name:    "deployed and rollback images are never deleted",
		pushes:  releases,
		policy:  policy(rule(1, `"tagStatus": "tagged", "tagPrefixList": ["1.0."], "countType": "imageCountMoreThan", "countNumber": 1`)),
		protect: []int{1, 3}, // 1.0.1 running, 1.0.3 the rollback target
		want:    []string{"1.0.1", "1.0.3", "1.0.4", "dev-a", "dev-b", "latest"},
	}, {
		name: "a pod pinned to one platform's digest protects the whole index",
		pushes: []push{
			{tags: []string{"multi-1"}, days: 30, index: 2},
			{tags: []string{"multi-2"}, days: 20, index: 2},
			{tags: []string{"multi-3"}, days: 10, index: 2},
		},
		policy:  policy(rule(1, `"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1`)),
		protect: []int{-1}, // first child of multi-1
		want:    []string{"multi-1", "multi-3"},
	}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := srv.Repo(t, fmt.Sprintf("team/app%d", i))
			var digests, firstChild []v1.Hash
			for _, p := range tt.pushes {
				if p.index > 0 {
					var imgs []v1.Image
					for range p.index {
						imgs = append(imgs, registrytest.Image(t, daysAgo(p.days)))
					}
					idx := registrytest.Index(t, imgs...)
					digests = append(digests, registrytest.PushIndex(t, repo, idx, p.tags...))
					d, _ := imgs[0].Digest()
					firstChild = append(firstChild, d)
					continue
				}
				digests = append(digests, registrytest.Push(t, repo, registrytest.Image(t, daysAgo(p.days)), p.tags...))
				firstChild = append(firstChild, v1.Hash{})
			}
			var protect []registry.Protection
			var protected []v1.Hash
			for _, i := range tt.protect {
				var d name.Digest
				if i >= 0 {
					d = repo.Digest(digests[i].String())
					protected = append(protected, digests[i])
				} else {
					d = repo.Digest(firstChild[-i-1].String())
					protected = append(protected, digests[-i-1])
				}
				protect = append(protect, registry.Protection{Ref: d.Name(), Why: fmt.Sprintf("test protection %d", i)})
			}
			pol, err := lifecycle.Parse([]byte(tt.policy))
			if err != nil {
				t.Fatal(err)
			}
			before := remaining(t, repo)
			opts := registry.PruneOptions{Repository: repo.Name(), Policy: pol, Protect: protect, DryRun: true}

			dry, err := registry.Prune(ctx, client(t), opts)
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if got := remaining(t, repo); !slices.Equal(got, before) {
				t.Fatalf("dry run changed the repository: %v → %v", before, got)
			}
			if len(dry.Deleted) != 0 {
				t.Fatalf("dry run reports deletions: %v", dry.Deleted)
			}
			for _, d := range dry.Decisions {
				isProtected := slices.ContainsFunc(protected, func(h v1.Hash) bool { return h.String() == d.Image.Digest })
				if isProtected != (d.Action == lifecycle.Protected) {
					t.Errorf("image %v: action %s, protected=%v", d.Image.Tags, d.Action, isProtected)
				}
				if isProtected && !strings.Contains(d.Why, "test protection") {
					t.Errorf("protected image %v does not say why: %q", d.Image.Tags, d.Why)
				}
			}

			opts.DryRun = false
			rep, err := registry.Prune(ctx, client(t), opts)
			if err != nil {
				t.Fatalf("prune: %v", err)
			}
			if got := remaining(t, repo); !slices.Equal(got, tt.want) {
				t.Errorf("tags left %v, want %v", got, tt.want)
			}
			// The report names exactly what went, and it is gone.
			var deletedTags []string
			for _, d := range rep.Deleted {
				deletedTags = append(deletedTags, d.Tags...)
				if _, err := remote.Head(repo.Digest(d.Digest)); err == nil {
					t.Errorf("reported deleted %s is still there", d.Digest)
				}
			}
			slices.Sort(deletedTags)
			if want := without(before, tt.want); !slices.Equal(deletedTags, want) {
				t.Errorf("report says deleted %v, want %v", deletedTags, want)
			}
			if expired := len(dry.Decisions) - countNot(dry.Decisions, lifecycle.Expire); expired != len(rep.Deleted) {
				t.Errorf("dry run planned %d deletions, real run did %d", expired, len(rep.Deleted))
			}
			// Untagged manifests and protected images survive.
			for i, p := range tt.pushes {
				if len(p.tags) == 0 || slices.Contains(protected, digests[i]) {
					if _, err := remote.Head(repo.Digest(digests[i].String())); err != nil {
						t.Errorf("push %d (%v) was deleted: %v", i, p.tags, err)
					}
				}
			}
		})
	}
}

func countNot(ds []lifecycle.Decision, v lifecycle.Verdict) int {
	n := 0
	for _, d := range ds {
		if d.Action != v {
			n++
		}
	}
	return n
}

func without(a, b []string) []string {
	out := []string{}
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

func TestPruneProtectionForms(t *testing.T) {
	srv := registrytest.Start(t)
	repo := srv.Repo(t, "team/forms")
	var digests []v1.Hash
	for i := range 4 {
		digests = append(digests, registrytest.Push(t, repo, registrytest.Image(t, daysAgo(10-i)), fmt.Sprintf("v%d", i)))
	}
	pol, err := lifecycle.Parse([]byte(policy(rule(1, `"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1`))))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := registry.Prune(context.Background(), client(t), registry.PruneOptions{
		Repository: repo.Name(), Policy: pol, DryRun: true,
		Protect: []registry.Protection{
			{Ref: "v0", Why: "bare tag"},
			{Ref: digests[1].String(), Why: "bare digest"},
			{Ref: repo.Tag("v2").Name(), Why: "full tag"},
			{Ref: "index.docker.io/library/nginx:latest", Why: "other repository"},
			{Ref: "v9", Why: "typo"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]lifecycle.Verdict{}
	for _, d := range rep.Decisions {
		got[d.Image.Tags[0]] = d.Action
	}
	want := map[string]lifecycle.Verdict{"v0": lifecycle.Protected, "v1": lifecycle.Protected, "v2": lifecycle.Protected, "v3": lifecycle.Keep}
	for tag, w := range want {
		if got[tag] != w {
			t.Errorf("%s: %s, want %s", tag, got[tag], w)
		}
	}
	if !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, "v9") && strings.Contains(n, "nothing to protect") }) {
		t.Errorf("no note about the protection naming no tag: %v", rep.Notes)
	}
}

func TestPrevious(t *testing.T) {
	srv := registrytest.Start(t)
	repo := srv.Repo(t, "team/prev")
	registrytest.Push(t, repo, registrytest.Image(t, daysAgo(3)), "1.0.0")
	d1 := registrytest.Push(t, repo, registrytest.Image(t, daysAgo(2)), "1.0.1")
	registrytest.Push(t, repo, registrytest.Image(t, daysAgo(1)), "1.0.2", "latest")
	registrytest.Push(t, repo, registrytest.Image(t, daysAgo(0)), "dev-x")

	tests := []struct {
		prefix, tag string
		errCode     int
	}{
		{prefix: "1.", tag: "1.0.1"},
		{prefix: "", tag: "1.0.2"},
		{prefix: "dev-", errCode: exitcode.BadInput},
	}
	for _, tt := range tests {
		prev, err := registry.Previous(context.Background(), client(t), repo.Name(), tt.prefix)
		if tt.errCode != 0 {
			if exitcode.Of(err) != tt.errCode {
				t.Errorf("prefix %q: err %v (exit %d), want exit %d", tt.prefix, err, exitcode.Of(err), tt.errCode)
			}
			continue
		}
		if err != nil {
			t.Fatalf("prefix %q: %v", tt.prefix, err)
		}
		if prev.Tag != tt.tag {
			t.Errorf("prefix %q: previous %s, want %s", tt.prefix, prev.Tag, tt.tag)
		}
		if tt.tag == "1.0.1" && prev.Reference != repo.Tag("1.0.1").String()+"@"+d1.String() {
			t.Errorf("pinned reference %s", prev.Reference)
		}
	}
}

func TestUnreachableRegistry(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close() // nothing listens here now

	pol, err := lifecycle.Parse([]byte(policy(rule(1, `"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1`))))
	if err != nil {
		t.Fatal(err)
	}
	_, err = registry.Prune(context.Background(), client(t), registry.PruneOptions{Repository: host + "/team/web", Policy: pol})
	checkUnreachable(t, err, host)
	_, err = registry.Previous(context.Background(), client(t), host+"/team/web", "")
	checkUnreachable(t, err, host)
}

func checkUnreachable(t *testing.T, err error, host string) {
	t.Helper()
	var ee *exitcode.Error
	if !errors.As(err, &ee) || ee.Code != exitcode.Unreachable {
		t.Fatalf("error %v, want exit code %d", err, exitcode.Unreachable)
	}
	msg := err.Error()
	if !strings.Contains(msg, "cannot reach registry "+host) || !strings.Contains(msg, "connection refused") || strings.Contains(msg, "\n") {
		t.Errorf("message %q should be one line naming the registry and the cause", msg)
	}
}

func TestMissingRepository(t *testing.T) {
	srv := registrytest.Start(t)
	pol, err := lifecycle.Parse([]byte(policy(rule(1, `"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1`))))
	if err != nil {
		t.Fatal(err)
	}
	_, err = registry.Prune(context.Background(), client(t), registry.PruneOptions{Repository: srv.Host + "/no/such", Policy: pol})
	if exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("error %v (exit %d), want a not-found bad input", err, exitcode.Of(err))
	}
}

// The bcrypt hash of "rollguard-test-password" (cost 4), for the registry's htpasswd.
const (
	testUser     = "ci"
	testPassword = "rollguard-test-password"
	testHash     = "$2a$04$Iys2Ttzmi.OKCyQWnib3f.Zg96.7umPWEgUDnnU/BXt9pkn8az9a2"
)

// dockerConfig points DOCKER_CONFIG at a config.json holding user:password for host, as docker login writes it.
func dockerConfig(t *testing.T, host, user, password string) {
	t.Helper()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
}

func TestCredentialsFromDockerConfig(t *testing.T) {
	srv := registrytest.Start(t, registrytest.WithBasicAuth(testUser, testHash))
	repo := srv.Repo(t, "team/private")
	dockerConfig(t, srv.Host, testUser, testPassword)
	registrytest.Push(t, repo, registrytest.Image(t, daysAgo(2)), "1.0.0")
	registrytest.Push(t, repo, registrytest.Image(t, daysAgo(1)), "1.0.1")

	prev, err := registry.Previous(context.Background(), client(t), repo.Name(), "")
	if err != nil {
		t.Fatalf("with the docker config's credentials: %v", err)
	}
	if prev.Tag != "1.0.0" {
		t.Errorf("previous %s, want 1.0.0", prev.Tag)
	}

	dockerConfig(t, srv.Host, testUser, "wrong")
	_, err = registry.Previous(context.Background(), client(t), repo.Name(), "")
	if exitcode.Of(err) != exitcode.Unreachable || !strings.Contains(err.Error(), "refused our credentials") || strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("wrong password: error %v (exit %d), want exit 4 saying the credentials were refused, without the secret", err, exitcode.Of(err))
	}
}
