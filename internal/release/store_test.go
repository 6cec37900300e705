package release

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/sandbox"
)

var cluster *sandbox.Cluster

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	cluster, err = sandbox.Start(context.Background(), sandbox.Options{Progress: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cluster.Stop()
	return m.Run()
}

// connect is a kube.Client for the sandbox, built the way the CLI builds one.
func connect(t *testing.T, namespace string) *kube.Client {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(true)
	flags.KubeConfig = &cluster.Kubeconfig
	flags.Namespace = &namespace
	c, err := kube.Connect(context.Background(), flags)
	if err != nil {
		t.Fatalf("connecting to the sandbox: %v", err)
	}
	return c
}

func newRecord(ns, app string) *Record {
	return &Record{App: app, Namespace: ns, Environment: "staging", ChangeCause: "test", CI: manifest.CI{Provider: "GitHub Actions", Actor: "alice"}}
}

func TestCreateUpdateGet(t *testing.T) {
	ctx := context.Background()
	ns := cluster.Namespace(t)
	c := connect(t, ns)
	s := NewStore(c)

	secret := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "db", "namespace": ns, "uid": "x", "resourceVersion": "9", "managedFields": []any{}},
		"data":     map[string]any{"password": "aHVudGVyMg=="},
	}}
	r := newRecord(ns, "web")
	r.Objects = []ObjectState{{APIVersion: "v1", Kind: "Secret", Namespace: ns, Name: "db", Existed: true, Previous: Capture(secret)}}
	r.Workloads = []WorkloadState{{Kind: "Deployment", Namespace: ns, Name: "web", Images: []string{"web:1"}, PreviousRevision: 3}}
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.ID != "web.v1" || r.Revision != 1 || r.Outcome != Applying || r.CreatedAt.IsZero() {
		t.Fatalf("created record: id %q revision %d outcome %q created %v", r.ID, r.Revision, r.Outcome, r.CreatedAt)
	}

	sec, err := c.Typed.CoreV1().Secrets(ns).Get(ctx, "rollguard.release.web.v1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the record's Secret: %v", err)
	}
	wantLabels := map[string]string{LabelManagedBy: "rollguard", LabelApp: "web", LabelRevision: "1", LabelOutcome: "applying"}
	for k, v := range wantLabels {
		if sec.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, sec.Labels[k], v)
		}
	}
	if sec.Type != SecretType {
		t.Errorf("type %q, want %q", sec.Type, SecretType)
	}

	r.Outcome = Succeeded
	r.Timings.FinishedAt = time.Now().UTC()
	if err := s.Update(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, ns, "web.v1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Outcome != Succeeded || got.Environment != "staging" || got.CI.Actor != "alice" || got.Timings.FinishedAt.IsZero() {
		t.Errorf("read back: %+v", got)
	}
	if len(got.Objects) != 1 || got.Objects[0].Previous == nil {
		t.Fatalf("previous state lost: %+v", got.Objects)
	}
	prev := got.Objects[0].Previous
	if v, _, _ := unstructured.NestedString(prev.Object, "data", "password"); v != "aHVudGVyMg==" {
		t.Errorf("previous Secret data not kept for restore: %v", prev.Object)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(prev.Object, "metadata", "uid"); found {
		t.Errorf("Capture kept metadata.uid: %v", prev.Object)
	}
	sec, _ = c.Typed.CoreV1().Secrets(ns).Get(ctx, "rollguard.release.web.v1", metav1.GetOptions{})
	if sec.Labels[LabelOutcome] != "succeeded" {
		t.Errorf("outcome label after update = %q", sec.Labels[LabelOutcome])
	}

	_, err = s.Get(ctx, ns, "web.v9")
	var nf *NotFoundError
	if !errors.As(err, &nf) || exitcode.Of(err) != exitcode.BadInput {
		t.Errorf("Get of a missing record: %v (exit %d)", err, exitcode.Of(err))
	}
}

// An approval written by another process while this run updates the outcome must survive.
func TestUpdateMergesConcurrentChange(t *testing.T) {
	ctx := context.Background()
	ns := cluster.Namespace(t)
	s := NewStore(connect(t, ns))
	r := newRecord(ns, "api")
	r.Outcome = PendingApproval
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	other := NewStore(connect(t, ns))
	_, err := other.Modify(ctx, ns, r.ID, func(o *Record) error {
		o.Approval = &Approval{Decision: Approved, By: "bob", At: time.Now().UTC()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Outcome = RollingBack
	r.Message = "rolling back"
	if err := s.Update(ctx, r); err != nil {
		t.Fatalf("update after a concurrent change: %v", err)
	}
	got, err := s.Get(ctx, ns, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Outcome != RollingBack || got.Message != "rolling back" {
		t.Errorf("our change lost: outcome %q message %q", got.Outcome, got.Message)
	}
	if got.Approval == nil || got.Approval.By != "bob" {
		t.Errorf("the concurrent approval was lost: %+v", got.Approval)
	}
	if r.Approval == nil || r.Approval.By != "bob" {
		t.Errorf("the caller's record does not show the merged approval: %+v", r.Approval)
	}
}

func TestListLatestUnfinished(t *testing.T) {
	ctx := context.Background()
	ns := cluster.Namespace(t)
	s := NewStore(connect(t, ns))

	if r, err := s.Latest(ctx, ns, "web"); r != nil || err != nil {
		t.Fatalf("Latest with no records = %v, %v; want nil, nil", r, err)
	}
	outcomes := []Outcome{Succeeded, Tracking, Failed, Succeeded}
	for _, o := range outcomes {
		r := newRecord(ns, "web")
		r.Outcome = o
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	other := newRecord(ns, "api")
	other.Outcome = Applying
	if err := s.Create(ctx, other); err != nil {
		t.Fatal(err)
	}

	list, err := s.List(ctx, ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range list {
		ids = append(ids, r.ID)
	}
	if got, want := strings.Join(ids, ","), "web.v4,web.v3,web.v2,web.v1"; got != want {
		t.Errorf("List = %s, want %s", got, want)
	}
	all, err := s.List(ctx, ns, "")
	if err != nil || len(all) != 5 {
		t.Errorf("List of every app: %d records, %v; want 5", len(all), err)
	}
	latest, err := s.Latest(ctx, ns, "web")
	if err != nil || latest == nil || latest.ID != "web.v4" {
		t.Errorf("Latest = %v, %v; want web.v4", latest, err)
	}
	unfinished, err := s.Unfinished(ctx, ns, "web")
	if err != nil || unfinished == nil || unfinished.ID != "web.v2" {
		t.Errorf("Unfinished = %v, %v; want web.v2 (tracking)", unfinished, err)
	}
	if u, err := s.Unfinished(ctx, ns, "nothing"); u != nil || err != nil {
		t.Errorf("Unfinished of an app without records = %v, %v", u, err)
	}
}

func TestConcurrentCreatesGetDistinctRevisions(t *testing.T) {
	ctx := context.Background()
	ns := cluster.Namespace(t)
	const n = 6
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		// Separate stores and connections: as separate pipelines would be.
		s := NewStore(connect(t, ns))
		wg.Go(func() {
			r := newRecord(ns, "web")
			errs[i] = s.Create(ctx, r)
			ids[i] = r.ID
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		if seen[ids[i]] {
			t.Errorf("revision %s given twice", ids[i])
		}
		seen[ids[i]] = true
	}
	for i := 1; i <= n; i++ {
		if !seen[ID("web", i)] {
			t.Errorf("revision %d missing: got %v", i, ids)
		}
	}
}

func TestPruneKeepsNewestSuccess(t *testing.T) {
	ctx := context.Background()
	ns := cluster.Namespace(t)
	s := NewStore(connect(t, ns))
	s.HistoryMax = 3
	// v1 succeeded; v2..v6 failed. v1 must survive as the last good release.
	for i := 1; i <= 6; i++ {
		r := newRecord(ns, "web")
		r.Outcome = Failed
		if i == 1 {
			r.Outcome = Succeeded
		}
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List(ctx, ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range list {
		ids = append(ids, r.ID)
	}
	if got, want := strings.Join(ids, ","), "web.v6,web.v5,web.v1"; got != want {
		t.Errorf("after pruning to 3: %s, want %s", got, want)
	}
	// Numbering continues after pruning.
	r := newRecord(ns, "web")
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.ID != "web.v7" {
		t.Errorf("next record after pruning = %s, want web.v7", r.ID)
	}
}

// randomText is n characters that do not compress much (base64 of random bytes, 6 bits a character).
func randomText(n int) string {
	b := make([]byte, n*3/4+3)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)[:n]
}

func TestRecordTooLarge(t *testing.T) {
	ctx := context.Background()
	ns := cluster.Namespace(t)
	kc := connect(t, ns)
	s := NewStore(kc)
	// More than 16 MiB compressed: more than a record may be split into.
	cm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "huge", "namespace": ns},
		"data":     map[string]any{"blob": randomText(23 << 20)},
	}}
	r := newRecord(ns, "web")
	r.Objects = []ObjectState{{APIVersion: "v1", Kind: "ConfigMap", Namespace: ns, Name: "huge", Existed: true, Previous: cm}}
	err := s.Create(ctx, r)
	if err == nil {
		t.Fatal("a record over 16 MiB compressed was accepted")
	}
	if !strings.Contains(err.Error(), "16 Secrets of 1 MiB") || !strings.Contains(err.Error(), "ConfigMap/"+ns+"/huge") {
		t.Errorf("error does not name the limit and the cause: %v", err)
	}
	if exitcode.Of(err) != exitcode.BadInput {
		t.Errorf("exit code %d, want %d (nothing changed)", exitcode.Of(err), exitcode.BadInput)
	}
	list, err := kc.Typed.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelApp + "=web"})
	if err != nil || len(list.Items) != 0 {
		t.Errorf("a record was stored anyway: %d Secrets", len(list.Items))
	}
}

// A record of 1,000 objects whose previous states do not compress into one Secret is split over several;
// it reads back whole through Get, List and Latest, an update replaces its parts (the old ones go), and
// pruning the record takes its parts with it.
func TestLargeRecordIsSplit(t *testing.T) {
	ctx := context.Background()
	ns := cluster.Namespace(t)
	kc := connect(t, ns)
	s := NewStore(kc)
	s.HistoryMax = 1
	r := newRecord(ns, "web")
	for i := range 1000 {
		name := fmt.Sprintf("config-%04d", i)
		r.Objects = append(r.Objects, ObjectState{APIVersion: "v1", Kind: "ConfigMap", Namespace: ns, Name: name, Existed: true,
			Previous: &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": name, "namespace": ns},
				"data":     map[string]any{"blob": randomText(2 << 10)},
			}}})
	}
	want, _ := r.Objects[999].Previous.Object["data"].(map[string]any)
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	parts := func() []string {
		list, err := kc.Typed.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelApp + "=web"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, sec := range list.Items {
			if sec.Type == PartSecretType {
				out = append(out, sec.Name)
			}
		}
		return out
	}
	first := parts()
	if len(first) == 0 {
		t.Fatal("a record of about 2 MiB compressed was stored without parts")
	}
	check := func(how string, got *Record, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		if len(got.Objects) != 1000 {
			t.Fatalf("%s: %d objects, want 1000", how, len(got.Objects))
		}
		if data, _ := got.Objects[999].Previous.Object["data"].(map[string]any); data["blob"] != want["blob"] {
			t.Errorf("%s: the last object's previous state differs", how)
		}
	}
	got, err := s.Get(ctx, ns, r.ID)
	check("Get", got, err)
	latest, err := s.Latest(ctx, ns, "web")
	check("Latest", latest, err)
	all, err := s.List(ctx, ns, "web")
	if err != nil || len(all) != 1 {
		t.Fatalf("List: %d records, %v; want the one (parts are not records)", len(all), err)
	}
	check("List", all[0], nil)

	got.Outcome = Succeeded
	if err := s.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	modified, err := s.Modify(ctx, ns, r.ID, func(m *Record) error { m.Message = "checked"; return nil })
	check("Modify", modified, err)
	now := parts()
	if len(now) != len(first) || slices.Contains(now, first[0]) {
		t.Errorf("after two updates the parts are %v, want as many as %v and new ones (the replaced ones deleted)", now, first)
	}
	again, err := s.Get(ctx, ns, r.ID)
	check("Get after updates", again, err)
	if again.Outcome != Succeeded || again.Message != "checked" {
		t.Errorf("updates lost: outcome %s, message %q", again.Outcome, again.Message)
	}

	// A newer succeeded record with HistoryMax 1 prunes this one, and its parts with it.
	next := newRecord(ns, "web")
	next.Outcome = Succeeded
	if err := s.Create(ctx, next); err != nil {
		t.Fatal(err)
	}
	next.Outcome = Succeeded
	if err := s.Update(ctx, next); err != nil {
		t.Fatal(err)
	}
	third := newRecord(ns, "web")
	if err := s.Create(ctx, third); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, ns, r.ID); err == nil {
		t.Fatalf("record %s was not pruned", r.ID)
	}
	if left := parts(); len(left) != 0 {
		t.Errorf("parts of the pruned record left behind: %v", left)
	}
}

func TestCapture(t *testing.T) {
	live := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{
			"name": "web", "namespace": "prod", "uid": "u", "resourceVersion": "5", "generation": int64(3),
			"creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": []any{map[string]any{"manager": "x"}},
			"labels":      map[string]any{"app": "web"},
			"annotations": map[string]any{"deployment.kubernetes.io/revision": "4", "team": "a"},
		},
		"spec":   map[string]any{"replicas": int64(2)},
		"status": map[string]any{"replicas": int64(2)},
	}}
	got := Capture(live)
	for _, path := range [][]string{{"status"}, {"metadata", "uid"}, {"metadata", "resourceVersion"}, {"metadata", "generation"}, {"metadata", "creationTimestamp"}, {"metadata", "managedFields"}, {"metadata", "annotations", "deployment.kubernetes.io/revision"}} {
		if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, path...); found {
			t.Errorf("Capture kept %s", strings.Join(path, "."))
		}
	}
	for _, path := range [][]string{{"spec", "replicas"}, {"metadata", "labels", "app"}, {"metadata", "annotations", "team"}, {"metadata", "name"}} {
		if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, path...); !found {
			t.Errorf("Capture dropped %s", strings.Join(path, "."))
		}
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(live.Object, "status"); !found {
		t.Error("Capture changed the live object")
	}
	if Capture(nil) != nil {
		t.Error("Capture(nil) is not nil")
	}
}

// One listing serves the latest record and the next one's number; a listing that another writer has
// overtaken since (a record created after it) still gives the new record a revision of its own.
func TestCreateFromListing(t *testing.T) {
	ctx := context.Background()
	ns := cluster.Namespace(t)
	s := NewStore(connect(t, ns))
	for range 2 {
		if err := s.Create(ctx, newRecord(ns, "web")); err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.ListApp(ctx, ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	if latest, err := l.Latest(ctx); err != nil || latest == nil || latest.ID != "web.v2" {
		t.Fatalf("latest of the listing = %v, %v; want web.v2", latest, err)
	}
	r := newRecord(ns, "web")
	if err := s.CreateListed(ctx, r, l); err != nil || r.ID != "web.v3" {
		t.Fatalf("created %s, %v; want web.v3", r.ID, err)
	}
	if err := s.Create(ctx, newRecord(ns, "web")); err != nil { // web.v4, after the listing
		t.Fatal(err)
	}
	stale := newRecord(ns, "web")
	if err := s.CreateListed(ctx, stale, l); err != nil || stale.ID != "web.v5" {
		t.Errorf("created from an overtaken listing: %s, %v; want web.v5", stale.ID, err)
	}
	if list, err := s.List(ctx, ns, "web"); err != nil || len(list) != 5 {
		t.Errorf("%d records, %v; want 5", len(list), err)
	}
}
