package diagnose

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Each row diagnoses one fixture (testdata/<dir>) at Now = the fixture's capture time + after.
func TestDiagnose(t *testing.T) {
	const img = "registry.example.com/web:1.5.0"
	tests := []struct {
		name     string
		dir      string
		after    time.Duration     // Now = captured + after
		timedOut bool              // Deadline = Now: the rollout ran out of time
		th       func(*Thresholds) // tweaks DefaultThresholds
		log      string            // previous log of every pod's "web" container
		output   string            // what every pod's running "web" container wrote so far
		status   Status
		reason   Reason
		mentions []string // must appear in the message, evidence or fix
	}{
		// Deployments: healthy and progressing.
		{name: "complete rollout is healthy", dir: "deployment-healthy", status: Healthy},
		{name: "slow start is progressing", dir: "deployment-progressing", status: Progressing,
			mentions: []string{"1 of 3 replicas updated", "not ready"}},
		{name: "slow start past the deadline times out", dir: "deployment-progressing", timedOut: true,
			status: Failed, reason: Timeout, mentions: []string{"deadline", "not ready"}},
		{name: "healthy ignores the deadline", dir: "deployment-healthy", timedOut: true, status: Healthy},

		// Jobs (a migration shipped with the release): done when complete, failed at the backoff limit.
		{name: "completed job is healthy", dir: "job-complete", status: Healthy},
		{name: "job past its backoff limit failed", dir: "job-failed", status: Failed, reason: JobFailed,
			mentions: []string{"job migrate failed: BackoffLimitExceeded", "container migrate exited with code 1", "terminated Error, exit code 1", "not undone by a rollback"}},

		// Image pulls.
		{name: "ImagePullBackOff fails at once", dir: "image-pull-backoff", status: Failed, reason: ImagePullFailed,
			mentions: []string{img, "container web: waiting ImagePullBackOff", "Normal BackOff: Back-off pulling image", "does not exist"}},
		{name: "a first ErrImagePull saying not found fails at once", dir: "image-pull-first-error", status: Failed, reason: ImagePullFailed,
			mentions: []string{"image missing: not found", "Warning Failed: Error: ErrImagePull", "does not exist"}},
		{name: "a pull that timed out is a registry blip at first", dir: "pull-blip-first-error", status: Progressing,
			mentions: []string{"registry unreachable", "i/o timeout", "transient: tolerated for 1m0s"}},
		{name: "the kubelet's back-off on a timeout is still a blip", dir: "pull-blip-backoff", status: Progressing,
			mentions: []string{"registry unreachable", "waiting ImagePullBackOff"}},
		{name: "a registry unreachable past the grace fails", dir: "pull-blip-backoff", after: time.Minute, status: Failed, reason: ImagePullFailed,
			mentions: []string{"registry unreachable", "i/o timeout", "cannot reach the registry"}},
		{name: "InvalidImageName fails at once", dir: "image-invalid-name", status: Failed, reason: ImagePullFailed,
			mentions: []string{"invalid reference format", "not a valid image name"}},

		// Crashes.
		{name: "CrashLoopBackOff with logs", dir: "crash-loop", status: Failed, reason: CrashLoop,
			log:      "starting web 1.5.0\nDB_PASSWORD=hunter2\npanic: missing env DATABASE_URL",
			mentions: []string{"exited with code 1 (Error)", "restarted", "Warning BackOff: Back-off restarting failed container web", `last log line: "panic: missing env DATABASE_URL"`, "DB_PASSWORD=[redacted]"}},
		{name: "OOMKilled restarts reach the threshold", dir: "crash-oomkilled", status: Failed, reason: CrashLoop,
			mentions: []string{"exited with code 137 (OOMKilled)", "memory limit 128Mi"}},
		{name: "OOMKilled below a higher threshold is progressing", dir: "crash-oomkilled",
			th: func(th *Thresholds) { th.CrashLoopRestarts = 5 }, status: Progressing, mentions: []string{"OOMKilled"}},

		{name: "one restart, running again, is not a crash loop", dir: "restart-once", status: Progressing,
			mentions: []string{"restarted 1 time"}},
		{name: "an evicted new pod is replaced, not judged", dir: "evicted", status: Progressing, mentions: []string{"1 of 3 replicas updated"}},

		// Config: a missing ConfigMap, Secret or key nobody looked up may be on its way (waits 30s);
		// TestPrecisionVariations has the rows where the caller looked.
		{name: "missing ConfigMap", dir: "config-error", after: 31 * time.Second, status: Failed, reason: ConfigError,
			mentions: []string{`ConfigMap "app-config" not found`, `create ConfigMap "app-config" in namespace`}},
		{name: "missing Secret key", dir: "config-missing-key", after: 31 * time.Second, status: Failed, reason: ConfigError,
			mentions: []string{`key "password" missing from Secret "db"`}},

		// Readiness: probe 5s × 3 = 15s; the old pods have no probe (no history), so the wait is 15s plus
		// the 10s first-deploy slack; the fixture was read past that.
		{name: "never ready fails past the probe budget", dir: "never-ready", status: Failed, reason: ReadinessFailed,
			mentions: []string{"Warning Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503", "HTTP GET :8080/healthz"}},
		{name: "never ready within a larger slack", dir: "never-ready",
			th: func(th *Thresholds) { th.ReadinessSlack = time.Minute }, status: Progressing, mentions: []string{"statuscode: 503", "(its probes allow 15s)"}},

		{name: "a previous revision that started in seconds: the probes decide", dir: "slow-start-history", status: Progressing,
			mentions: []string{"its previous revision became ready in"}},
		{name: "a previous revision that started in seconds: fails 1s past the probes", dir: "slow-start-history", after: 16 * time.Second,
			status: Failed, reason: ReadinessFailed, mentions: []string{"its probes allow 15s"}},

		// Creation refused by admission. Quota, a LimitRange's maximum and a missing ServiceAccount name an
		// object someone may be fixing: they fail once they lasted the refusal grace (10s).
		{name: "quota within the refusal grace", dir: "quota-exceeded", status: Progressing,
			mentions: []string{`exceeded ResourceQuota "pods-max"`}},
		{name: "limit range within the refusal grace", dir: "limitrange-violation", status: Progressing},
		{name: "missing service account within the refusal grace", dir: "serviceaccount-missing", status: Progressing},
		{name: "quota", dir: "quota-exceeded", after: 10 * time.Second, status: Failed, reason: QuotaExceeded,
			mentions: []string{`exceeded ResourceQuota "pods-max"`, "limited: pods=3", "Warning FailedCreate: Error creating: pods", "condition ReplicaFailure=True FailedCreate"}},
		{name: "limit range", dir: "limitrange-violation", after: 10 * time.Second, status: Failed, reason: LimitRangeViolation,
			mentions: []string{"maximum cpu usage per Container is 500m, but limit is 1"}},
		{name: "a LimitRange default limit below the request", dir: "limitrange-default-invalid", status: Failed, reason: LimitRangeViolation,
			mentions: []string{"default cpu limit 100m is below the request 200m", "set resources.limits.cpu explicitly"}},
		{name: "an admission policy denies the pods", dir: "admission-policy", status: Failed, reason: AdmissionDenied,
			mentions: []string{`ValidatingAdmissionPolicy "deny-`, "images :1.5.0 are blocked by the release policy"}},
		{name: "missing service account", dir: "serviceaccount-missing", after: 10 * time.Second, status: Failed, reason: PermissionDenied,
			mentions: []string{`ServiceAccount "deployer" not found`, `create ServiceAccount "deployer" in namespace`}},
		{name: "pod security", dir: "pod-security", status: Failed, reason: PermissionDenied,
			mentions: []string{`violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)`}},

		// Scheduling: 30s where the cluster may grow (or nobody looked), 3s where it cannot.
		{name: "unschedulable within the grace", dir: "unschedulable", status: Progressing,
			mentions: []string{"Insufficient cpu", "the cluster may add nodes"}},
		{name: "unschedulable past the grace", dir: "unschedulable", after: 31 * time.Second, status: Failed, reason: Unschedulable,
			mentions: []string{"0/2 nodes are available: 2 Insufficient cpu.", "Warning FailedScheduling", "request (8)"}},
		{name: "unschedulable with a longer scale-up grace", dir: "unschedulable", after: 31 * time.Second,
			th: func(th *Thresholds) { th.ScaleUpGrace = 5 * time.Minute }, status: Progressing},
		{name: "unschedulable at the deadline times out with the explanation", dir: "unschedulable", timedOut: true,
			status: Failed, reason: Timeout, mentions: []string{"Insufficient cpu"}},

		// The deployment controller's own verdict.
		{name: "progress deadline exceeded", dir: "progress-deadline", status: Failed, reason: ProgressDeadlineExceeded,
			mentions: []string{"made no progress within its progress deadline", "condition Progressing=False ProgressDeadlineExceeded"}},

		// Only the new revision, only events of this rollout.
		{name: "old revision crashes are ignored", dir: "old-revision-crash", status: Progressing},
		{name: "stale events are ignored", dir: "stale-events", status: Progressing},
		{name: "a more specific later cause beats an earlier generic one", dir: "precedence-image-over-schedule",
			status: Failed, reason: ImagePullFailed},

		// StatefulSets and DaemonSets.
		{name: "statefulset healthy", dir: "statefulset-healthy", status: Healthy},
		{name: "statefulset crash loop on the updated ordinal", dir: "statefulset-crash-loop", status: Failed, reason: CrashLoop,
			mentions: []string{"pod web-2", "StatefulSet"}},
		{name: "statefulset quota", dir: "statefulset-quota", after: 10 * time.Second, status: Failed, reason: QuotaExceeded,
			mentions: []string{"StatefulSet web cannot create pods", `exceeded ResourceQuota "compute"`, "limited: requests.cpu="}},
		{name: "daemonset healthy", dir: "daemonset-healthy", status: Healthy},
		{name: "daemonset image pull", dir: "daemonset-image-pull", status: Failed, reason: ImagePullFailed,
			mentions: []string{img, "1/2 updated"}},

		// Captured on the sandbox's real node (realcapture_test.go): a real kubelet, containerd and runc.
		{name: "real node: complete rollout is healthy", dir: "real-deployment-healthy", status: Healthy},
		{name: "real node: a tag the registry lacks", dir: "real-image-pull-backoff", status: Failed, reason: ImagePullFailed,
			mentions: []string{"testapp:1.5.0-missing", "not found"}},
		{name: "real node: crash loop", dir: "real-crash-loop", status: Failed, reason: CrashLoop,
			mentions: []string{"exited with code 1", "CrashLoopBackOff"}},
		{name: "real node: never ready", dir: "real-never-ready", after: 3 * time.Second, status: Failed, reason: ReadinessFailed,
			mentions: []string{"Readiness probe failed: HTTP probe failed with statuscode: 503"}},
		// A crash the runtime has not reported yet looks like this; the app's last words tell the user.
		{name: "real node: never ready, with its output", dir: "real-never-ready", after: 3 * time.Second, output: "testapp 2.0\nfatal: missing setting DATABASE_URL\n",
			status: Failed, reason: ReadinessFailed,
			mentions: []string{`last output line: "fatal: missing setting DATABASE_URL"`, "container web output: testapp 2.0", "its last output lines are in the evidence"}},
		{name: "real node: missing ConfigMap key", dir: "real-config-missing-key", after: 31 * time.Second, status: Failed, reason: ConfigError,
			mentions: []string{"database-url", "web-config"}},
		{name: "real node: OOMKilled", dir: "real-crash-oomkilled", status: Failed, reason: CrashLoop,
			mentions: []string{"OOMKilled", "48Mi"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := loadFixture(t, filepath.Join("testdata", tc.dir))
			in := f.in
			in.Now = f.captured.Add(tc.after)
			if tc.timedOut {
				in.Deadline = in.Now
			}
			if tc.log != "" {
				in.Logs = map[string]string{}
				for _, p := range in.Pods {
					in.Logs[p.Name+"/web"] = tc.log
				}
			}
			if tc.output != "" {
				in.Logs = map[string]string{}
				for _, p := range in.Pods {
					in.Logs[OutputKey(p.Name, "web")] = tc.output
				}
			}
			th := DefaultThresholds()
			if tc.th != nil {
				tc.th(&th)
			}
			v := Diagnose(in, th)
			t.Logf("%s", v.Line())
			for _, e := range v.Evidence {
				t.Logf("  %s: %s", e.Object, e.Text)
			}
			if v.Status != tc.status || v.Reason != tc.reason {
				t.Fatalf("got %s/%s, want %s/%s: %s", v.Status, v.Reason, tc.status, tc.reason, v.Message)
			}
			all := v.Workload + "\n" + v.Message + "\n" + v.Fix + "\n" + v.Progress
			for _, e := range v.Evidence {
				all += "\n" + e.Object + " " + e.Text
			}
			for _, m := range tc.mentions {
				if !strings.Contains(all, m) {
					t.Errorf("verdict does not mention %q", m)
				}
			}
			if strings.Contains(v.Message, "\n") || strings.Contains(v.Line(), "\n") {
				t.Errorf("message spans lines: %q", v.Message)
			}
			if v.Progress == "" || v.Workload == "" {
				t.Errorf("verdict lacks progress or workload: %+v", v)
			}
			if v.Status != Failed {
				return
			}
			if v.Message == "" || v.Fix == "" || len(v.Evidence) == 0 {
				t.Errorf("failed verdict lacks message, fix or evidence: %+v", v)
			}
			if v.Since.IsZero() || v.Since.After(in.Now) {
				t.Errorf("Since = %v, want a time at or before Now %v", v.Since, in.Now)
			}
		})
	}
}

func TestDiagnoseRejectsUnknownWorkloads(t *testing.T) {
	for _, w := range []struct {
		name string
		in   Input
	}{
		{"nil", Input{}},
		{"replicaset", Input{Workload: &appsv1.ReplicaSet{}}},
	} {
		v := Diagnose(w.in, DefaultThresholds())
		if v.Status == Healthy || v.Status == Failed || v.Message == "" {
			t.Errorf("%s: got %+v, want a progressing verdict that says why it cannot judge", w.name, v)
		}
	}
}

func TestEventTimes(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 1, 1, 0, 0, s, 0, time.UTC) }
	legacy := corev1.Event{FirstTimestamp: metav1.NewTime(at(1)), LastTimestamp: metav1.NewTime(at(9)), Count: 4}
	series := corev1.Event{EventTime: metav1.NewMicroTime(at(2)),
		Series: &corev1.EventSeries{Count: 7, LastObservedTime: metav1.NewMicroTime(at(30))}}
	single := corev1.Event{EventTime: metav1.NewMicroTime(at(3))}
	for _, tc := range []struct {
		name        string
		e           corev1.Event
		first, last time.Time
		n           int32
	}{
		{"legacy", legacy, at(1), at(9), 4},
		{"events.k8s.io series", series, at(2), at(30), 7},
		{"events.k8s.io single", single, at(3), at(3), 1},
	} {
		if got := firstSeen(tc.e); !got.Equal(tc.first) {
			t.Errorf("%s: firstSeen = %v, want %v", tc.name, got, tc.first)
		}
		if got := lastSeen(tc.e); !got.Equal(tc.last) {
			t.Errorf("%s: lastSeen = %v, want %v", tc.name, got, tc.last)
		}
		if got := occurrences(tc.e); got != tc.n {
			t.Errorf("%s: occurrences = %d, want %d", tc.name, got, tc.n)
		}
	}
	// An event series that continues after the rollout started counts; one that ended before does not.
	ix := indexEvents([]corev1.Event{
		{InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "a"}, EventTime: metav1.NewMicroTime(at(2)),
			Series: &corev1.EventSeries{Count: 2, LastObservedTime: metav1.NewMicroTime(at(20))}},
		{InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "b"}, FirstTimestamp: metav1.NewTime(at(1)), LastTimestamp: metav1.NewTime(at(5))},
	}, at(10))
	if len(ix.about("Pod", "a", "")) != 1 || len(ix.about("Pod", "b", "")) != 0 {
		t.Errorf("indexEvents kept %v, want only the series still running after Started", ix)
	}
}

func TestProbeBudget(t *testing.T) {
	for _, tc := range []struct {
		p    *corev1.Probe
		want time.Duration
	}{
		{nil, 0},
		{&corev1.Probe{}, 30 * time.Second}, // API defaults: 0 + 10 × 3
		{&corev1.Probe{InitialDelaySeconds: 5, PeriodSeconds: 2, FailureThreshold: 4}, 13 * time.Second},
	} {
		if got := probeBudget(tc.p); got != tc.want {
			t.Errorf("probeBudget(%+v) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestTailRedactsSecrets(t *testing.T) {
	log := "boot\n\napi_key: abc123\npassword=\"p w\"\nTOKEN=xyz other=1\nready\n"
	got := strings.Join(tail(log, 4), "|")
	want := `api_key: [redacted]|password=[redacted]|TOKEN=[redacted] other=1|ready`
	if got != want {
		t.Errorf("tail = %q, want %q", got, want)
	}
	if tail(log, 0) != nil {
		t.Errorf("tail with 0 lines returned lines")
	}
}

func TestReasonsHaveFixes(t *testing.T) {
	for _, r := range []Reason{ImagePullFailed, CrashLoop, ConfigError, ReadinessFailed, QuotaExceeded,
		LimitRangeViolation, PermissionDenied, AdmissionDenied, PodRejected, Unschedulable, ProgressDeadlineExceeded, JobFailed, CustomResourceFailed, Timeout} {
		if r.Fix() == "" {
			t.Errorf("%s has no fix", r)
		}
	}
}

func TestLine(t *testing.T) {
	v := Verdict{Workload: "Deployment/web", Status: Failed, Reason: CrashLoop, Message: "pod web-1: container web\nexited", Progress: "0/3 updated, 0 ready"}
	want := "failed Deployment/web CrashLoop: pod web-1: container web exited [0/3 updated, 0 ready]"
	if got := v.Line(); got != want {
		t.Errorf("Line() = %q, want %q", got, want)
	}
}

// Variations on captured fixtures for states the sandbox passes through too quickly to capture.
func TestDiagnoseVariations(t *testing.T) {
	tests := []struct {
		name   string
		dir    string
		after  time.Duration
		mutate func(t *testing.T, in *Input)
		status Status
		reason Reason
	}{
		{name: "quota while an old pod terminates waits for the quota to free up", dir: "quota-exceeded",
			mutate: terminateOnePod, status: Progressing},
		{name: "quota still refused after the grace fails", dir: "quota-exceeded", after: 31 * time.Second,
			mutate: terminateOnePod, status: Failed, reason: QuotaExceeded},
		{name: "a StatefulSet FailedCreate for a pod that exists by now is resolved", dir: "statefulset-quota",
			mutate: func(t *testing.T, in *Input) {
				sts := in.Workload.(*appsv1.StatefulSet)
				var p corev1.Pod
				for _, q := range in.Pods {
					if q.Name == "web-1" {
						p = *q.DeepCopy()
					}
				}
				if p.Name == "" {
					t.Fatal("fixture has no web-1")
				}
				p.Name, p.UID = "web-2", "recreated-web-2"
				p.Labels[appsv1.ControllerRevisionHashLabelKey] = sts.Status.UpdateRevision
				in.Pods = append(in.Pods, p)
			},
			status: Progressing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			diagnoseVariation(t, tc.dir, tc.after, tc.mutate, tc.status, tc.reason, nil)
		})
	}
}

// terminateOnePod marks one pod as being deleted, as during a rolling update's scale-down.
func terminateOnePod(t *testing.T, in *Input) {
	if len(in.Pods) == 0 {
		t.Fatal("fixture has no pods")
	}
	now := metav1.NewTime(in.Now)
	in.Pods[0].DeletionTimestamp = &now
}

// A verify Job (the release's own smoke test) that fails is VerificationFailed, with its log lines —
// redacted — as evidence; the same Job outside the verify phase is a JobFailed.
func TestDiagnoseVerificationJob(t *testing.T) {
	f := loadFixture(t, filepath.Join("testdata", "job-failed"))
	for _, tc := range []struct {
		verify bool
		reason Reason
		says   string
	}{
		{verify: true, reason: VerificationFailed, says: "verify job migrate failed"},
		{verify: false, reason: JobFailed, says: "job migrate failed"},
	} {
		in := f.in
		in.Now, in.Verification = f.captured, tc.verify
		in.Logs = map[string]string{}
		for _, p := range in.Pods {
			in.Logs[p.Name+"/migrate"] = "connecting to postgres://app@db\npassword=hunter2\ncheck orders table: missing column status"
		}
		v := Diagnose(in, DefaultThresholds())
		if v.Status != Failed || v.Reason != tc.reason || !strings.HasPrefix(v.Message, tc.says) {
			t.Fatalf("verify=%v: got %s, want failed %s saying %q", tc.verify, v.Line(), tc.reason, tc.says)
		}
		var all string
		for _, e := range v.Evidence {
			all += e.Text + "\n"
		}
		if !strings.Contains(all, "missing column status") || strings.Contains(all, "hunter2") {
			t.Errorf("verify=%v: evidence must carry the log tail, redacted:\n%s", tc.verify, all)
		}
		if v.Fix != tc.reason.Fix() {
			t.Errorf("fix = %q", v.Fix)
		}
	}
}
