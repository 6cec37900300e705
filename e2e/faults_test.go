package e2e

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/track"
)

// slowApp is a healthy release whose pods become ready only after a while.
func slowApp(name, image, after string) string {
	return app{name: name, image: image, scenario: "slow-ready", annotations: map[string]string{"sandbox.rollguard.dev/ready-after": after}}.yaml()
}

// TestVerdictsSurviveAPIServerRestart restarts kube-apiserver while two deploys are tracked: a broken one
// (image cannot be pulled) and a healthy one whose pods are ready only 20 s later. Every watch ends with the
// restart; the verdicts must still be right (ImagePullFailed and rolled back; healthy), and the healthy one
// can only have been seen through watches re-established after the restart. Not parallel: the outage
// would fail other tests' API calls.
func TestVerdictsSurviveAPIServerRestart(t *testing.T) {
	ns := cluster.Namespace(t)
	deployV1(t, ns)
	api := startRollguard(t, slowApp("api", "registry.example.com/api:1.0.0", "20s"), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "3m")
	waitForOutcome(t, ns, "api", release.Tracking)
	web := startRollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "3m")
	// The broken release may be judged within moments of its apply, so it can leave "tracking" before a
	// poll sees it; api, ready only after 20 s, is the one certainly tracked across the restart.
	waitForOutcome(t, ns, "web", release.Tracking, release.Failed, release.RollingBack, release.RolledBack)

	restartBegan := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cluster.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	t.Logf("API server down for %s", restarted.Sub(restartBegan).Round(time.Millisecond))

	w, a := web(), api()
	if w.code != 1 {
		t.Fatalf("broken release: exit %d, want 1 (rolled back)\n%s\n%s", w.code, w.stdout, w.stderr)
	}
	if rep := parseReport(t, w); len(rep.Workloads) != 1 || rep.Workloads[0].Reason != "ImagePullFailed" {
		t.Errorf("broken release: verdict %+v, want ImagePullFailed", rep.Workloads)
	} else {
		detected, _ := time.Parse(time.RFC3339Nano, rep.Workloads[0].DetectedAt)
		t.Logf("image pull failure detected %s after the restart began", detected.Sub(restartBegan).Round(time.Millisecond))
	}
	assertV1(t, ns)
	if a.code != 0 {
		t.Fatalf("healthy release: exit %d, want 0\n%s\n%s", a.code, a.stdout, a.stderr)
	}
	rep := parseReport(t, a)
	if len(rep.Workloads) != 1 || rep.Workloads[0].Status != "healthy" {
		t.Fatalf("healthy release: %+v", rep.Workloads)
	}
	if detected, err := time.Parse(time.RFC3339Nano, rep.Workloads[0].DetectedAt); err != nil || !detected.After(restarted) {
		t.Errorf("healthy verdict at %s, want after the API server was back (%s): it must come from re-established watches", rep.Workloads[0].DetectedAt, restarted)
	}
}

// endingWatches is what a load balancer or proxy that cuts long requests does to watches: every watch
// response ends (EOF) after a fixed time, whatever it is streaming.
type endingWatches struct {
	next  http.RoundTripper
	after time.Duration
	ended *atomic.Int32
}

func (e endingWatches) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := e.next.RoundTrip(req)
	if err != nil || req.URL.Query().Get("watch") != "true" {
		return resp, err
	}
	pr, pw := io.Pipe()
	src := resp.Body
	go func() {
		_, err := io.Copy(pw, src)
		pw.CloseWithError(err)
	}()
	time.AfterFunc(e.after, func() {
		e.ended.Add(1)
		pw.Close()
		src.Close()
	})
	resp.Body = pipeBody{pr, src}
	return resp, nil
}

type pipeBody struct {
	*io.PipeReader
	src io.Closer
}

func (b pipeBody) Close() error { b.src.Close(); return b.PipeReader.Close() }

// TestTrackerSurvivesEndedWatches runs the tracker through a connection that ends every watch after one
// second. A broken rollout must still be ImagePullFailed and a healthy one whose pods get ready after 8 s
// must still be healthy: what happens while a watch is being re-established is not lost.
func TestTrackerSurvivesEndedWatches(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployV1(t, ns)
	var ended atomic.Int32
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &cluster.Kubeconfig
	flags.Namespace = &ns
	flags.WrapConfigFn = func(c *rest.Config) *rest.Config {
		c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return endingWatches{next: rt, after: time.Second, ended: &ended}
		})
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := kube.Connect(ctx, flags)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	applyDeployment(t, ns, app{image: "registry.example.com/web:2.0.0", scenario: "image-pull-failure"}.yaml())
	applyDeployment(t, ns, slowApp("api", "registry.example.com/api:1.0.0", "8s"))

	opts := track.Options{Thresholds: diagnose.DefaultThresholds(), Started: started.Add(-2 * time.Second), Deadline: started.Add(2 * time.Minute)}
	var wg sync.WaitGroup
	got := map[string]track.Status{}
	var mu sync.Mutex
	for _, name := range []string{"web", "api"} {
		wg.Go(func() {
			st, err := track.Track(ctx, c, []track.Target{{Kind: "Deployment", Namespace: ns, Name: name}}, opts)
			if err != nil {
				t.Errorf("tracking %s: %v", name, err)
				return
			}
			mu.Lock()
			got[name] = st[0]
			mu.Unlock()
		})
	}
	wg.Wait()
	if v := got["web"].Verdict; v.Status != diagnose.Failed || v.Reason != diagnose.ImagePullFailed {
		t.Errorf("web: %s %s (%s), want failed ImagePullFailed", v.Status, v.Reason, v.Message)
	}
	if v := got["api"].Verdict; v.Status != diagnose.Healthy {
		t.Errorf("api: %s %s (%s), want healthy", v.Status, v.Reason, v.Message)
	}
	// Seven informers per tracker, each cut every second while the slow one took 8 s.
	if n := ended.Load(); n < 12 {
		t.Errorf("only %d watches were ended; the test did not exercise re-watching", n)
	}
	t.Logf("%d watches ended by the connection", ended.Load())
}

// applyDeployment creates or replaces a Deployment with the admin client (a rollout started by anything).
func applyDeployment(t *testing.T, ns, manifest string) {
	t.Helper()
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict([]byte(manifest), &d); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	deps := cluster.Client().AppsV1().Deployments(ns)
	live, err := deps.Get(ctx, d.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = deps.Create(ctx, &d, metav1.CreateOptions{})
	case err == nil:
		live.Spec = d.Spec
		_, err = deps.Update(ctx, live, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestThrottledDeploy runs two deploys (a failing one, a healthy slow one) as an identity that API Priority
// and Fairness throttles: all its requests go to a priority level of three seats that answers what it
// cannot serve at once with 429 Too Many Requests and Retry-After. rollguard's own bursts (the permission
// preflight, seven informers listing at once, two runs) exceed three seats. The apiserver's metrics prove
// requests were rejected; the verdicts, the rollback and the healthy release must still be right.
func TestThrottledDeploy(t *testing.T) {
	t.Parallel()
	ns := cluster.Namespace(t)
	deployV1(t, ns)
	kc := serviceAccountKubeconfig(t, ns, "throttled")
	bindPrintedRole(t, ns, "throttled")
	schema := "rollguard-throttled-" + ns
	throttle(t, schema, ns, map[string]string{schema: "throttled"})

	env := []string{"KUBECONFIG=" + kc}
	before := rejected(t, schema)
	api := startRollguardEnv(t, env, slowApp("api", "registry.example.com/api:1.0.0", "5s"), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "3m")
	web := startRollguardEnv(t, env, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "3m")
	w, a := web(), api()
	after := rejected(t, schema)
	t.Logf("requests of rollguard rejected with 429: %d", after-before)
	if after == before {
		t.Errorf("no request of rollguard was throttled; the test proves nothing")
	}
	if w.code != 1 {
		t.Fatalf("broken release: exit %d, want 1 (rolled back)\n%s\n%s", w.code, w.stdout, w.stderr)
	}
	if rep := parseReport(t, w); len(rep.Workloads) != 1 || rep.Workloads[0].Reason != "ImagePullFailed" {
		t.Errorf("verdict %+v, want ImagePullFailed", rep.Workloads)
	}
	assertV1(t, ns)
	if a.code != 0 {
		t.Fatalf("healthy release: exit %d, want 0\n%s\n%s", a.code, a.stdout, a.stderr)
	}
}

// throttle routes every request of the given service accounts (schema name → account) to a priority
// level of few seats that rejects (429) what it cannot serve at once.
func throttle(t *testing.T, level, ns string, accounts map[string]string) {
	t.Helper()
	ctx := context.Background()
	fc := cluster.Client().FlowcontrolV1()
	one, zero := int32(1), int32(0)
	pl := &flowcontrolv1.PriorityLevelConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: level},
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{Type: flowcontrolv1.PriorityLevelEnablementLimited, Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
			NominalConcurrencyShares: &one, LendablePercent: &zero, BorrowingLimitPercent: &zero,
			LimitResponse: flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject},
		}},
	}
	if _, err := fc.PriorityLevelConfigurations().Create(ctx, pl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = fc.PriorityLevelConfigurations().Delete(context.Background(), level, metav1.DeleteOptions{})
	})
	for name, sa := range accounts {
		fs := &flowcontrolv1.FlowSchema{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: flowcontrolv1.FlowSchemaSpec{
				PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: level},
				MatchingPrecedence:         100,
				DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
				Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
					Subjects:         []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindServiceAccount, ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Namespace: ns, Name: sa}}},
					ResourceRules:    []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Namespaces: []string{"*"}, ClusterScope: true}},
					NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
				}},
			},
		}
		if _, err := fc.FlowSchemas().Create(ctx, fs, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = fc.FlowSchemas().Delete(context.Background(), name, metav1.DeleteOptions{}) })
		// The apiserver marks a schema Dangling=False once its priority level is in use.
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			got, err := fc.FlowSchemas().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			for _, c := range got.Status.Conditions {
				if c.Type == flowcontrolv1.FlowSchemaConditionDangling && c.Status == flowcontrolv1.ConditionFalse {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("FlowSchema %s never took effect: %v", name, err)
		}
	}
}

// rejected reads from the apiserver's metrics how many requests of a FlowSchema were rejected (429).
func rejected(t *testing.T, schema string) int {
	t.Helper()
	raw, err := cluster.Client().CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_flowcontrol_rejected_requests_total{") || !strings.Contains(line, `flow_schema="`+schema+`"`) {
			continue
		}
		fields := strings.Fields(line)
		n, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		total += int(n)
	}
	return total
}

// TestKilledDecisionConverges kills a deploy waiting for approval right after a decision is recorded
// (approved by another process, or the approval timed out) and before it acts on it. The re-run converges
// to the last healthy release, and the recorded decision is kept.
func TestKilledDecisionConverges(t *testing.T) {
	t.Parallel()
	for _, point := range crashpoint.DecisionPoints {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			deployV1(t, ns)
			env := []string{"KUBECONFIG=" + cluster.Kubeconfig, crashpoint.Env + "=" + point}
			args := []string{"deploy", "-f", "-", "-n", ns, "--timeout", "2m", "--lock-ttl", "2s", "--on-failure", "approve"}
			var killed result
			var id string
			switch point {
			case "approval:decided":
				wait := startRollguardEnv(t, env, releaseV2Broken(), append(args, "--approval-timeout", "5m")...)
				id = waitForOutcome(t, ns, "web", release.PendingApproval)
				if d := rollguard(t, "", "approve", id, "-n", ns); d.code != 0 {
					t.Fatalf("approve: exit %d\n%s", d.code, d.stderr)
				}
				killed = wait()
			case "approval:timed-out":
				killed = rollguardEnv(t, env, releaseV2Broken(), append(args, "--approval-timeout", "1s")...)
				id = waitForOutcome(t, ns, "web", release.PendingApproval)
			default:
				t.Fatalf("no scenario for %s", point)
			}
			if killed.code != -1 || !strings.Contains(killed.stderr, crashpoint.Line(point)) {
				t.Fatalf("the run was not killed at its crash point %s: exit %d\n%s", point, killed.code, killed.stderr)
			}
			decision := record(t, ns, id).Approval
			r := rollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--timeout", "2m", "--wait-for-lock", "1m")
			if r.code != 1 {
				t.Fatalf("re-run: exit %d, want 1 (rolled back healthy)\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			assertV1(t, ns)
			if after := record(t, ns, id).Approval; after == nil || decision == nil || after.Decision != decision.Decision || after.By != decision.By {
				t.Errorf("recorded decision changed: before %+v, after %+v", decision, after)
			}
			noSecrets(t, r.stdout, r.stderr, killed.stdout, killed.stderr)
		})
	}
}

// TestKilledCommandConverges kills the later-step commands: `rollguard rollback RELEASE` of a held
// release, and `rollguard undo`; running the same command again converges.
func TestKilledCommandConverges(t *testing.T) {
	t.Parallel()
	for _, point := range crashpoint.CommandPoints {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			ns := cluster.Namespace(t)
			deployV1(t, ns)
			env := []string{"KUBECONFIG=" + cluster.Kubeconfig, crashpoint.Env + "=" + point}
			var args []string
			switch point {
			case "rollback:locked":
				if r := rollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--on-failure", "hold", "--timeout", "2m"); r.code != 5 {
					t.Fatalf("held deploy: exit %d\n%s", r.code, r.stderr)
				}
				args = []string{"rollback", waitForOutcome(t, ns, "web", release.PendingApproval), "-n", ns, "--timeout", "2m", "--lock-ttl", "2s", "--wait-for-lock", "1m"}
			case "undo:recorded":
				if r := rollguard(t, releaseV2Broken(), "deploy", "-f", "-", "-n", ns, "--on-failure", "none", "--timeout", "2m"); r.code != 2 {
					t.Fatalf("failed deploy left in place: exit %d\n%s", r.code, r.stderr)
				}
				// The failed release changed the ConfigMap and Secret too; undo restores only the workload.
				args = []string{"undo", "deployment/web", "-n", ns, "--timeout", "2m", "--lock-ttl", "2s", "--wait-for-lock", "1m"}
			default:
				t.Fatalf("no scenario for %s", point)
			}
			killed := rollguardEnv(t, env, "", args...)
			if killed.code != -1 || !strings.Contains(killed.stderr, crashpoint.Line(point)) {
				t.Fatalf("the run was not killed at its crash point %s: exit %d\n%s", point, killed.code, killed.stderr)
			}
			if r := rollguard(t, "", args...); r.code != 0 {
				t.Fatalf("re-run: exit %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if point == "undo:recorded" {
				assertWorkloadV1(t, ns)
				return
			}
			assertV1(t, ns)
		})
	}
}

// assertWorkloadV1 checks the Deployment runs release v1's template and is healthy.
func assertWorkloadV1(t *testing.T, ns string) {
	t.Helper()
	d, err := cluster.Client().AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/web:1.0.0" {
		t.Errorf("image %s, want v1's", img)
	}
	if !available(d) {
		t.Errorf("not healthy: %+v", d.Status)
	}
}
