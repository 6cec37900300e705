package registry_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/registry"
	"github.com/rollguard/rollguard/internal/registry/lifecycle"
)

// images policy show|diff|apply against the ECR double: the diff is by rule, the plan beside it is rollguard's
// for the file's policy today, images the policy would let ECR expire but rollguard protects are flagged, and
// apply refuses such a policy unless told otherwise. Nothing is ever deleted by these commands.
func TestECRLifecyclePolicy(t *testing.T) {
	srv, repo := ecrRepo(t, "team/web")
	srv.Push("team/web", hoursAgo(50), "1.0.0")
	srv.Push("team/web", hoursAgo(40), "1.0.1")
	srv.Push("team/web", hoursAgo(30))
	srv.Push("team/web", hoursAgo(20), "1.0.2")
	srv.Push("team/web", hoursAgo(10), "1.0.3")
	ctx := context.Background()
	running := []registry.Protection{{Ref: "1.0.1", Why: "running in pod prod/web-1"}}
	run := func(o registry.PolicyOptions) (*registry.PolicyReport, error) {
		o.Repository = repo
		return registry.LifecyclePolicy(ctx, client(t), o)
	}

	show, err := run(registry.PolicyOptions{})
	if err != nil || show.Current != "" || len(show.Decisions) != 0 || !strings.HasSuffix(show.ARN, ":repository/team/web") {
		t.Fatalf("show without a policy: %+v, %v", show, err)
	}

	current := policy(
		rule(1, `"tagStatus": "tagged", "tagPrefixList": ["1."], "countType": "imageCountMoreThan", "countNumber": 5`),
		rule(30, `"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 5`),
	)
	srv.SetPolicy("team/web", current)
	fileText := policy(
		rule(1, `"tagStatus": "tagged", "tagPrefixList": ["1."], "countType": "imageCountMoreThan", "countNumber": 2`),
		rule(20, `"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1`),
	)
	file, err := lifecycle.Parse([]byte(fileText))
	if err != nil {
		t.Fatal(err)
	}

	diff, err := run(registry.PolicyOptions{Policy: file, Text: []byte(fileText), Protect: running})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, c := range diff.Changes {
		kinds = append(kinds, c.Kind)
	}
	if !slices.Equal(kinds, []string{"changed", "added", "removed"}) ||
		!slices.Equal(diff.Changes[0].Fields, []string{"selection.countNumber: 5 → 2"}) ||
		diff.Changes[1].RulePriority != 20 || diff.Changes[2].RulePriority != 30 {
		t.Errorf("changes %+v", diff.Changes)
	}
	// The file keeps 1.0.2 and 1.0.3: it expires 1.0.0, and would let ECR expire 1.0.1, which runs.
	verdicts := map[string]lifecycle.Verdict{}
	for _, d := range diff.Decisions {
		if len(d.Image.Tags) > 0 {
			verdicts[d.Image.Tags[0]] = d.Action
		}
	}
	if verdicts["1.0.0"] != lifecycle.Expire || verdicts["1.0.1"] != lifecycle.Protected || verdicts["1.0.3"] != lifecycle.Keep {
		t.Errorf("plan %v", verdicts)
	}
	if len(diff.AtRisk) != 1 || diff.AtRisk[0].Image.Tags[0] != "1.0.1" || !strings.Contains(diff.AtRisk[0].Why, "running in pod prod/web-1") {
		t.Errorf("at risk %+v, want 1.0.1 running", diff.AtRisk)
	}

	_, err = run(registry.PolicyOptions{Policy: file, Text: []byte(fileText), Protect: running, Apply: true})
	if exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "not applied") || !strings.Contains(err.Error(), "1.0.1") {
		t.Fatalf("apply over a protected image: %v (exit %d), want exit 3 naming 1.0.1", err, exitcode.Of(err))
	}
	if srv.Policy("team/web") != current {
		t.Fatal("a refused apply changed the policy")
	}

	applied, err := run(registry.PolicyOptions{Policy: file, Text: []byte(fileText), Protect: running, Apply: true, AllowExpiringProtected: true})
	if err != nil || !applied.Applied || srv.Policy("team/web") != fileText {
		t.Fatalf("apply with --allow-expiring-protected: %+v, %v; policy now %s", applied, err, srv.Policy("team/web"))
	}
	again, err := run(registry.PolicyOptions{Policy: file, Text: []byte(fileText), Apply: true})
	if err != nil || again.Applied || len(again.Changes) != 0 || countOf(srv.Calls(), "PutLifecyclePolicy") != 1 {
		t.Errorf("re-applying the same policy: %+v, %v; calls %v", again, err, srv.Calls())
	}
	shown, err := run(registry.PolicyOptions{Protect: running})
	if err != nil || shown.Current != fileText || len(shown.AtRisk) != 1 {
		t.Errorf("show after apply: %+v, %v", shown, err)
	}
	if left := srv.Images("team/web"); len(left) != 5 || countOf(srv.Calls(), "BatchDeleteImage") != 0 {
		t.Errorf("policy commands deleted images: %d left, calls %v", len(left), srv.Calls())
	}
}

func TestLifecyclePolicyNeedsECR(t *testing.T) {
	_, err := registry.LifecyclePolicy(context.Background(), client(t), registry.PolicyOptions{Repository: "ghcr.io/acme/web"})
	if exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "not an ECR repository") {
		t.Fatalf("error %v (exit %d), want exit 3", err, exitcode.Of(err))
	}
}
