// Package registry benchmarks registry retention: planning a 10,000-tag repository, purely and against a real
// registry. Results are in docs/benchmarks.md ("Registry retention").
//
//	go test ./bench/registry -run '^$' -bench . -benchmem -benchtime 1x   (the real registry one is slow)
package registry_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/rollguard/rollguard/internal/registry"
	"github.com/rollguard/rollguard/internal/registry/lifecycle"
	"github.com/rollguard/rollguard/internal/registry/registrytest"
)

const tags = 10_000

// issuePolicy is the issue's kind of policy, with one rule of each kind.
const issuePolicy = `{"rules": [
  {"rulePriority": 1, "description": "keep 5 latest", "selection": {"tagStatus": "tagged", "tagPrefixList": ["latest"], "countType": "imageCountMoreThan", "countNumber": 5}, "action": {"type": "expire"}},
  {"rulePriority": 2, "description": "keep 20 releases", "selection": {"tagStatus": "tagged", "tagPatternList": ["v*.*.*"], "countType": "imageCountMoreThan", "countNumber": 20}, "action": {"type": "expire"}},
  {"rulePriority": 3, "description": "branches 14 days", "selection": {"tagStatus": "tagged", "tagPrefixList": ["branch-"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14}, "action": {"type": "expire"}},
  {"rulePriority": 4, "description": "keep 2 untagged", "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 2}, "action": {"type": "expire"}},
  {"rulePriority": 5, "description": "expire the rest after 30 days", "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}}
]}`

// synthetic returns images carrying n tags in all: releases, branch builds and a few with two tags.
func synthetic(n int) ([]lifecycle.Image, []lifecycle.Protection) {
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	var imgs []lifecycle.Image
	var prot []lifecycle.Protection
	for i := 0; i < n; {
		img := lifecycle.Image{
			Digest: fmt.Sprintf("sha256:%064x", i),
			Pushed: now.Add(-time.Duration(r.IntN(365*24)) * time.Hour),
		}
		switch i % 3 {
		case 0:
			img.Tags = []string{fmt.Sprintf("v1.%d.%d", i/100, i%100)}
		case 1:
			img.Tags = []string{fmt.Sprintf("branch-feature-%d", i)}
		default:
			img.Tags = []string{fmt.Sprintf("sha-%x", i), fmt.Sprintf("latest-%d", i)}
		}
		i += len(img.Tags)
		imgs = append(imgs, img)
		if i%50 == 0 {
			prot = append(prot, lifecycle.Protection{Digest: img.Digest, Why: "running"})
		}
	}
	return imgs, prot
}

func BenchmarkPlan10000Tags(b *testing.B) {
	pol, err := lifecycle.Parse([]byte(issuePolicy))
	if err != nil {
		b.Fatal(err)
	}
	imgs, prot := synthetic(tags)
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	var plan *lifecycle.Plan
	for b.Loop() {
		plan = lifecycle.Evaluate(pol, imgs, prot, now)
	}
	b.ReportMetric(float64(plan.Count(lifecycle.Expire)), "expired")
	b.ReportMetric(float64(len(imgs)), "images")
}

func BenchmarkParsePolicy(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := lifecycle.Parse([]byte(issuePolicy)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRealRegistry10000Tags plans a 10,000-tag repository held by a real registry on loopback: 1,000
// images with 10 tags each. It measures listing (one HEAD per tag, one manifest and one config GET per image)
// plus planning; run it with -benchtime 1x, the setup pushes 10,000 tags.
func BenchmarkRealRegistry10000Tags(b *testing.B) {
	srv := registrytest.Start(b)
	repo := srv.Repo(b, "bench/web")
	now := time.Now()
	for i := range tags / 10 {
		img := registrytest.Image(b, now.Add(-time.Duration(i)*time.Hour))
		registrytest.Push(b, repo, img, fmt.Sprintf("v1.%d.0", i))
		for j := 1; j < 10; j++ {
			if err := remote.Tag(repo.Tag(fmt.Sprintf("build-%d-%d", i, j)), img); err != nil {
				b.Fatal(err)
			}
		}
	}
	pol, err := lifecycle.Parse([]byte(issuePolicy))
	if err != nil {
		b.Fatal(err)
	}
	c, err := registry.NewClient()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep, err := registry.Prune(context.Background(), c, registry.PruneOptions{Repository: repo.Name(), Policy: pol, DryRun: true})
		if err != nil {
			b.Fatal(err)
		}
		if len(rep.Decisions) != tags/10 {
			b.Fatalf("%d images, want %d", len(rep.Decisions), tags/10)
		}
	}
}
