package registry

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/rollguard/rollguard/internal/registry/ecrtest"
	"github.com/rollguard/rollguard/internal/registry/lifecycle"
	"github.com/rollguard/rollguard/internal/registry/registrytest"
)

// A tag moved onto an expired image between planning and deleting (a pipeline retagging an old release for a
// rollback) keeps that image: the re-check skips it and the report says why.
func TestPruneSkipsImagesRetaggedSincePlanning(t *testing.T) {
	srv := registrytest.Start(t)
	repo := srv.Repo(t, "team/race")
	now := time.Now()
	old := registrytest.Image(t, now.AddDate(0, 0, -3))
	oldDigest := registrytest.Push(t, repo, old, "1.0.0")
	older := registrytest.Push(t, repo, registrytest.Image(t, now.AddDate(0, 0, -4)), "0.9.0")
	registrytest.Push(t, repo, registrytest.Image(t, now.AddDate(0, 0, -1)), "1.0.1")

	pol, err := lifecycle.Parse([]byte(`{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient()
	if err != nil {
		t.Fatal(err)
	}
	c.afterPlan = func() {
		if err := remote.Tag(repo.Tag("rollback"), old); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Prune(context.Background(), c, PruneOptions{Repository: repo.Name(), Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Skipped) != 1 || rep.Skipped[0].Digest != oldDigest.String() || rep.Skipped[0].Why != "tagged rollback since planning" {
		t.Errorf("skipped %+v, want %s tagged rollback since planning", rep.Skipped, oldDigest)
	}
	if len(rep.Deleted) != 1 || rep.Deleted[0].Digest != older.String() {
		t.Errorf("deleted %+v, want only %s", rep.Deleted, older)
	}
	if _, err := remote.Head(repo.Tag("rollback")); err != nil {
		t.Errorf("the retagged image was deleted: %v", err)
	}
}

// The same re-check holds on ECR: a tag moved onto an expired image (here an untagged one) after planning
// keeps it.
func TestECRPruneSkipsImagesRetaggedSincePlanning(t *testing.T) {
	srv := ecrtest.Start(t)
	srv.Env(t)
	srv.CreateRepository("team/race")
	now := time.Now()
	old := srv.Push("team/race", now.Add(-3*time.Hour))
	older := srv.Push("team/race", now.Add(-4*time.Hour), "0.9.0")
	srv.Push("team/race", now.Add(-time.Hour), "1.0.1")

	pol, err := lifecycle.Parse([]byte(`{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient()
	if err != nil {
		t.Fatal(err)
	}
	c.afterPlan = func() { srv.Tag("team/race", old, "rollback") }
	rep, err := Prune(context.Background(), c, PruneOptions{Repository: srv.Host() + "/team/race", Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Skipped) != 1 || rep.Skipped[0].Digest != old || rep.Skipped[0].Why != "tagged rollback since planning" {
		t.Errorf("skipped %+v, want %s tagged rollback since planning", rep.Skipped, old)
	}
	if len(rep.Deleted) != 1 || rep.Deleted[0].Digest != older {
		t.Errorf("deleted %+v, want only %s", rep.Deleted, older)
	}
}
