package diagnose

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Precision rules on captured fixtures: facts the caller passes in (the autoscaler, the previous revision's
// start-up time) and states the sandbox passes through too quickly to capture.
func TestPrecisionVariations(t *testing.T) {
	tests := []struct {
		name     string
		dir      string
		after    time.Duration
		mutate   func(t *testing.T, in *Input)
		status   Status
		reason   Reason
		mentions []string
	}{
		// Unschedulable knows whether the cluster can grow.
		// The scheduler's first failure is the event's 02:24:22.097, 9 ms after the capture.
		{name: "no autoscaler: unschedulable waits out the short grace", dir: "unschedulable", after: 3 * time.Second,
			mutate: autoscaler(AutoscalerNone), status: Progressing},
		{name: "no autoscaler: unschedulable fails after the short grace", dir: "unschedulable", after: 3*time.Second + 10*time.Millisecond,
			mutate: autoscaler(AutoscalerNone), status: Failed, reason: Unschedulable, mentions: []string{"no node autoscaler"}},
		{name: "an autoscaler: the short grace is not enough", dir: "unschedulable", after: 3 * time.Second,
			mutate: autoscaler(ClusterAutoscaler), status: Progressing, mentions: []string{"cluster-autoscaler"}},
		{name: "no autoscaler but old pods terminating: room may free up", dir: "unschedulable", after: 3 * time.Second,
			mutate: together(autoscaler(AutoscalerNone), terminateOnePod), status: Progressing, mentions: []string{"terminating"}},
		{name: "NotTriggerScaleUp fails at once", dir: "unschedulable",
			mutate: together(autoscaler(ClusterAutoscaler), scaleEvent("NotTriggerScaleUp", "pod didn't trigger scale-up: 1 max node group size reached")),
			status: Failed, reason: Unschedulable, mentions: []string{"will not add a node", "max node group size reached"}},
		{name: "TriggeredScaleUp waits past the scale-up grace", dir: "unschedulable", after: time.Minute,
			mutate: together(autoscaler(ClusterAutoscaler), scaleEvent("TriggeredScaleUp", "pod triggered scale-up: [{pool-1 2->3 (max: 10)}]")),
			status: Progressing, mentions: []string{"adding nodes"}},
		{name: "TriggeredScaleUp fails at the cap", dir: "unschedulable", after: 6 * time.Minute,
			mutate: together(autoscaler(ClusterAutoscaler), scaleEvent("TriggeredScaleUp", "pod triggered scale-up: [{pool-1 2->3 (max: 10)}]")),
			status: Failed, reason: Unschedulable},

		// Readiness from the app's own history (never-ready: probe 5s × 3, read 27s+ after the start).
		{name: "an app known to start slowly is given its time", dir: "never-ready",
			mutate: knownStartup(20 * time.Second), status: Progressing, mentions: []string{"previous revision became ready in 20s"}},
		{name: "the wait counts from the latest the recorded whole-second start can have been", dir: "never-ready", after: -9500 * time.Millisecond,
			mutate: knownStartup(time.Second), status: Progressing},
		{name: "an app known to start fast fails soon after its probe budget", dir: "never-ready",
			mutate: knownStartup(time.Second), status: Failed, reason: ReadinessFailed, mentions: []string{"probes allow 15s"}},

		{name: "a first deploy: the probes plus the first-deploy slack", dir: "never-ready", after: -2 * time.Second,
			mutate: dropOldPods, status: Progressing, mentions: []string{"(its probes allow 15s)"}},
		{name: "a first deploy fails past the probes plus the first-deploy slack", dir: "never-ready",
			mutate: dropOldPods, status: Failed, reason: ReadinessFailed, mentions: []string{"(its probes allow 15s)"}},

		// After a restart the first start's history no longer sets the wait (CI once failed this healthy
		// release: probe 1s × 2, previous revision ready in 1s, the restarted container ready 3s after its
		// restart on a loaded machine). The restarted container gets its probes plus the first-deploy slack
		// from its own start; one that never gets ready still fails then.
		{name: "a restarted container is not timed by the previous revision's start-up", dir: "restart-once", after: 3 * time.Second,
			mutate: together(probeOldPods, newPodsProbe(1, 2)), status: Progressing},
		{name: "a restarted container that stays unready fails after its probes plus the first-deploy slack", dir: "restart-once", after: 13 * time.Second,
			mutate: together(probeOldPods, newPodsProbe(1, 2)), status: Failed, reason: ReadinessFailed,
			mentions: []string{"running for 13s but not ready (its probes allow 2s; its previous revision became ready in 1s, which does not bound a container that restarted 1 time)"}},
		{name: "a restarted container without history: the first-deploy wait from its restart", dir: "restart-once", after: 11 * time.Second,
			mutate: newPodsProbe(1, 2), status: Progressing},
		{name: "a restarted container without history fails after the first-deploy wait from its restart", dir: "restart-once", after: 13 * time.Second,
			mutate: newPodsProbe(1, 2), status: Failed, reason: ReadinessFailed, mentions: []string{"(its probes allow 2s since it restarted 1 time)"}},
		// The kubelet's events may tell of a restart before the pod's status does (a loaded node).
		{name: "a restart seen in the events before the status is not timed by the start-up history", dir: "never-ready", after: -8 * time.Second,
			mutate: together(knownStartup(time.Second), startedEvents(2)), status: Progressing},
		{name: "a restart seen in the events: a never-ready container still fails after the first-deploy wait", dir: "never-ready",
			mutate: together(knownStartup(time.Second), startedEvents(2)), status: Failed, reason: ReadinessFailed,
			mentions: []string{"does not bound a container that restarted 1 time"}},

		// Readiness lost after it was there: a blip, not a start, so the start-up history does not time it.
		{name: "readiness lost mid-rollout is not timed by the previous revision's start-up", dir: "never-ready", after: 8 * time.Second,
			mutate: together(knownStartup(time.Second), readinessLostAfter(16*time.Second)), status: Progressing,
			mentions: []string{"which does not bound a container that was ready before"}},
		{name: "readiness lost and never back fails after the probes plus the first-deploy slack", dir: "never-ready", after: 16 * time.Second,
			mutate: together(knownStartup(time.Second), readinessLostAfter(16*time.Second)), status: Failed, reason: ReadinessFailed,
			mentions: []string{"which does not bound a container that was ready before"}},
		// A new pod is not failed for being slower than its ready siblings were: on a loaded node the
		// kubelet reports a crash and restart seconds late (CI: the real node's restart-once, history 2s,
		// the second new pod still shown running unready at 5s while its sibling had taken 6s).
		{name: "a new pod slower than the previous revision but not than its ready siblings waits", dir: "never-ready",
			mutate: together(knownStartup(time.Second), readySibling(15*time.Second)), status: Progressing},
		{name: "a new pod never ready among ready siblings fails past twice their time", dir: "never-ready", after: 8 * time.Second,
			mutate: together(knownStartup(time.Second), readySibling(15*time.Second)), status: Failed, reason: ReadinessFailed,
			mentions: []string{"its ready new pods took 16s"}},

		// A ContainersReady=False written a moment after the start is the kubelet's first status write, not
		// readiness lost: the history still times it.
		{name: "a not-ready condition written just after the start is no lost readiness", dir: "never-ready",
			mutate: together(knownStartup(time.Second), readinessLostAfter(2*time.Second)), status: Failed, reason: ReadinessFailed,
			mentions: []string{"(its probes allow 15s; its previous revision became ready in 1s)"}},

		// Old pods without a probe were Ready as soon as they ran: no history, the first-deploy wait.
		{name: "old pods without a probe set no history", dir: "never-ready", after: -2 * time.Second,
			status: Progressing, mentions: []string{"(its probes allow 15s)"}},
		{name: "old pods with a probe set the history", dir: "never-ready", after: -2 * time.Second,
			mutate: probeOldPods, status: Failed, reason: ReadinessFailed, mentions: []string{"previous revision became ready in 1s"}},

		// A missing ConfigMap, Secret or key: still missing fails after the short config grace (3s); one
		// that exists now waits for the kubelet's retry.
		{name: "a ConfigMap still missing within the config grace waits", dir: "config-error", after: 2 * time.Second,
			mutate: configFact("ConfigMap/app-config", false), status: Progressing},
		{name: "a ConfigMap still missing fails after the config grace", dir: "config-error", after: 4 * time.Second,
			mutate: configFact("ConfigMap/app-config", false), status: Failed, reason: ConfigError, mentions: []string{`ConfigMap "app-config" not found`}},
		{name: "a slow pull before the config error does not eat the config grace", dir: "config-error", after: 2 * time.Second,
			mutate: together(configFact("ConfigMap/app-config", false), podsCreatedEarlier(10*time.Second)), status: Progressing},
		{name: "after a slow pull, the config grace counts from the kubelet's first failure", dir: "config-error", after: 4 * time.Second,
			mutate: together(configFact("ConfigMap/app-config", false), podsCreatedEarlier(10*time.Second)), status: Failed, reason: ConfigError},
		{name: "a ConfigMap that exists now waits for the kubelet's retry", dir: "config-error", after: 20 * time.Second,
			mutate: configFact("ConfigMap/app-config", true), status: Progressing, mentions: []string{"it exists now"}},
		{name: "a ConfigMap that exists now but is never picked up fails after the quota grace", dir: "config-error", after: 31 * time.Second,
			mutate: configFact("ConfigMap/app-config", true), status: Failed, reason: ConfigError},
		{name: "a Secret key still missing fails after the config grace", dir: "config-missing-key", after: 4 * time.Second,
			mutate: configFact("Secret/db#password", false), status: Failed, reason: ConfigError, mentions: []string{`key "password" missing from Secret "db"`}},
		{name: "a real node's missing key added since waits", dir: "real-config-missing-key", after: 10 * time.Second,
			mutate: configFact("ConfigMap/web-config#database-url", true), status: Progressing},

		// Quota with room for one surge pod: the rollout proceeds pod by pod, each ready pod freeing quota.
		{name: "quota while a new pod becomes ready waits", dir: "quota-exceeded", mutate: surgePod(false), status: Progressing,
			mentions: []string{"new pods are becoming ready"}},
		{name: "quota with every new pod ready and nothing terminating fails", dir: "quota-exceeded", after: 10 * time.Second,
			mutate: surgePod(true), status: Failed, reason: QuotaExceeded},

		// Evictions and preemptions do not fail a release by themselves.
		{name: "an evicted crash-looping pod is replaced, not judged", dir: "crash-loop", mutate: evictNewPods, status: Progressing},

		// Readiness gates are named, never failed on.
		{name: "a pod held by a readiness gate names it", dir: "deployment-progressing", after: 10 * time.Minute,
			mutate: gatedPods("target-health.example.com/web"), status: Progressing,
			mentions: []string{`held by readiness gate "target-health.example.com/web"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			diagnoseVariation(t, tc.dir, tc.after, tc.mutate, tc.status, tc.reason, tc.mentions)
		})
	}
}

// diagnoseVariation diagnoses fixture dir at its capture time + after, changed by mutate, with the default
// thresholds, and checks the verdict and what its message, fix or evidence mention.
func diagnoseVariation(t *testing.T, dir string, after time.Duration, mutate func(*testing.T, *Input), status Status, reason Reason, mentions []string) {
	t.Helper()
	f := loadFixture(t, filepath.Join("testdata", dir))
	in := f.in
	in.Now = f.captured.Add(after)
	if mutate != nil {
		mutate(t, &in)
	}
	v := Diagnose(in, DefaultThresholds())
	if v.Status != status || v.Reason != reason {
		t.Fatalf("got %s/%s, want %s/%s: %s", v.Status, v.Reason, status, reason, v.Message)
	}
	all := v.Message + "\n" + v.Fix
	for _, e := range v.Evidence {
		all += "\n" + e.Text
	}
	for _, m := range mentions {
		if !strings.Contains(all, m) {
			t.Errorf("verdict does not mention %q:\n%s", m, all)
		}
	}
}

func together(fs ...func(*testing.T, *Input)) func(*testing.T, *Input) {
	return func(t *testing.T, in *Input) {
		for _, f := range fs {
			f(t, in)
		}
	}
}

func autoscaler(a Autoscaler) func(*testing.T, *Input) {
	return func(_ *testing.T, in *Input) { in.Autoscaler = a }
}

// podsCreatedEarlier moves every pod's creation d earlier, as a slow image pull before the container's
// creation would.
func podsCreatedEarlier(d time.Duration) func(*testing.T, *Input) {
	return func(_ *testing.T, in *Input) {
		for i := range in.Pods {
			in.Pods[i].CreationTimestamp = metav1.NewTime(in.Pods[i].CreationTimestamp.Add(-d))
		}
	}
}

func knownStartup(d time.Duration) func(*testing.T, *Input) {
	return func(_ *testing.T, in *Input) { in.KnownStartup = d }
}

// scaleEvent adds the cluster-autoscaler's event (reason and message as its source writes them) to every
// unscheduled pod.
func scaleEvent(reason, msg string) func(*testing.T, *Input) {
	return func(t *testing.T, in *Input) {
		n := 0
		for _, p := range in.Pods {
			if p.Spec.NodeName != "" {
				continue
			}
			n++
			in.Events = append(in.Events, corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Name: p.Name + ".scale", Namespace: p.Namespace},
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: p.Name, Namespace: p.Namespace, UID: p.UID},
				Reason:         reason, Message: msg, Type: corev1.EventTypeNormal,
				Source:         corev1.EventSource{Component: "cluster-autoscaler"},
				FirstTimestamp: metav1.NewTime(in.Now), LastTimestamp: metav1.NewTime(in.Now), Count: 1,
			})
		}
		if n == 0 {
			t.Fatal("fixture has no unscheduled pod")
		}
	}
}

// surgePod adds to the new ReplicaSet one pod made from an old one, ready or not (as of the capture).
func surgePod(ready bool) func(*testing.T, *Input) {
	return func(t *testing.T, in *Input) {
		d := in.Workload.(*appsv1.Deployment)
		rs := newReplicaSet(d, in.ReplicaSets)
		if rs == nil || len(in.Pods) == 0 {
			t.Fatal("fixture has no new ReplicaSet or no pods")
		}
		p := *in.Pods[0].DeepCopy()
		p.Name, p.UID = rs.Name+"-surge", "surge-pod"
		p.Labels = map[string]string{}
		for k, v := range rs.Spec.Template.Labels {
			p.Labels[k] = v
		}
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.NewTime(in.Now.Add(-time.Minute))}}
		in.Pods = append(in.Pods, p)
	}
}

// startedEvents adds the kubelet's "Started container web" event, seen n times, to the new pods.
func startedEvents(n int32) func(*testing.T, *Input) {
	return func(t *testing.T, in *Input) {
		onNewPods(t, in, func(p *corev1.Pod) {
			at := p.Status.ContainerStatuses[0].State.Running.StartedAt
			in.Events = append(in.Events, corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Name: p.Name + ".started", Namespace: p.Namespace},
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: p.Name, Namespace: p.Namespace, UID: p.UID, FieldPath: "spec.containers{web}"},
				Reason:         "Started", Message: "Started container web", Type: corev1.EventTypeNormal,
				FirstTimestamp: at, LastTimestamp: metav1.NewTime(in.Now), Count: n,
			})
		})
	}
}

// readySibling adds to the new revision a copy of its first pod that started with it, restarted once and
// became ready took after its first start.
func readySibling(took time.Duration) func(*testing.T, *Input) {
	return func(t *testing.T, in *Input) {
		r, err := newRollout(*in)
		if err != nil || len(r.newPods) == 0 {
			t.Fatalf("fixture has no new pods (%v)", err)
		}
		p := *r.newPods[0].DeepCopy()
		p.Name, p.UID = p.Name+"-sibling", "sibling"
		cs := &p.Status.ContainerStatuses[0]
		first := cs.State.Running.StartedAt
		ready := metav1.NewTime(first.Add(took))
		cs.RestartCount, cs.Ready = 1, true
		cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, StartedAt: first, FinishedAt: metav1.NewTime(first.Add(time.Second))}}
		cs.State.Running.StartedAt = metav1.NewTime(first.Add(time.Second))
		for j := range p.Status.Conditions {
			if c := &p.Status.Conditions[j]; c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
				c.Status, c.LastTransitionTime = corev1.ConditionTrue, ready
			}
		}
		in.Pods = append(in.Pods, p)
	}
}

// configFact says whether the ConfigMap, Secret or key ref (ConfigRef.String()) exists now, and checks the
// fixture's kubelet reports it missing.
func configFact(ref string, present bool) func(*testing.T, *Input) {
	return func(t *testing.T, in *Input) {
		var missing []string
		for _, r := range MissingConfig(*in) {
			missing = append(missing, r.String())
		}
		if !slices.Contains(missing, ref) {
			t.Fatalf("the fixture's kubelet reports %v missing, not %s", missing, ref)
		}
		in.Config = map[string]bool{ref: present}
	}
}

// probeOldPods gives the old revision's pods a readiness probe, so their Ready time is the app's history.
func probeOldPods(t *testing.T, in *Input) {
	r, err := newRollout(*in)
	if err != nil {
		t.Fatal(err)
	}
	isNew := map[string]bool{}
	for _, p := range r.newPods {
		isNew[p.Name] = true
	}
	n := 0
	for i := range in.Pods {
		if !isNew[in.Pods[i].Name] {
			in.Pods[i].Spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 3}
			n++
		}
	}
	if n == 0 {
		t.Fatal("fixture has no old pods")
	}
}

// newPodsProbe sets the new pods' readiness probe to period s × failures.
func newPodsProbe(period, failures int32) func(*testing.T, *Input) {
	return func(t *testing.T, in *Input) {
		onNewPods(t, in, func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: period, FailureThreshold: failures}
		})
	}
}

// readinessLostAfter makes the new pods' containers ready once and unready again d after they started.
func readinessLostAfter(d time.Duration) func(*testing.T, *Input) {
	return func(t *testing.T, in *Input) {
		onNewPods(t, in, func(p *corev1.Pod) {
			started := p.Status.ContainerStatuses[0].State.Running.StartedAt
			for j := range p.Status.Conditions {
				if c := &p.Status.Conditions[j]; c.Type == corev1.ContainersReady {
					c.LastTransitionTime = metav1.NewTime(started.Add(d))
				}
			}
		})
	}
}

// dropOldPods leaves only the new revision's pods, as on a first deploy (or after Recreate removed them).
func dropOldPods(t *testing.T, in *Input) {
	r, err := newRollout(*in)
	if err != nil || len(r.newPods) == 0 {
		t.Fatalf("fixture has no new pods (%v)", err)
	}
	if len(r.newPods) == len(in.Pods) {
		t.Fatal("fixture has no old pods to drop")
	}
	in.Pods = r.newPods
}

// onNewPods applies f to every pod of the new revision in in.Pods.
func onNewPods(t *testing.T, in *Input, f func(p *corev1.Pod)) {
	r, err := newRollout(*in)
	if err != nil || len(r.newPods) == 0 {
		t.Fatalf("fixture has no new pods (%v)", err)
	}
	isNew := map[string]bool{}
	for _, p := range r.newPods {
		isNew[p.Name] = true
	}
	for i := range in.Pods {
		if isNew[in.Pods[i].Name] {
			f(&in.Pods[i])
		}
	}
}

// evictNewPods marks every pod of the new revision as the kubelet leaves an evicted one.
func evictNewPods(t *testing.T, in *Input) {
	onNewPods(t, in, func(p *corev1.Pod) {
		p.Status.Phase, p.Status.Reason = corev1.PodFailed, "Evicted"
		p.Status.Message = "The node was low on resource: memory."
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.DisruptionTarget,
			Status: corev1.ConditionTrue, Reason: "TerminationByKubelet", LastTransitionTime: metav1.NewTime(in.Now)})
	})
}

// gatedPods gives the new pods a readiness gate their controller has not set, and ready containers.
func gatedPods(gate string) func(*testing.T, *Input) {
	return func(t *testing.T, in *Input) {
		onNewPods(t, in, func(p *corev1.Pod) {
			p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: corev1.PodConditionType(gate)}}
			for j := range p.Status.ContainerStatuses {
				p.Status.ContainerStatuses[j].Ready = true
			}
			for j := range p.Status.Conditions {
				if p.Status.Conditions[j].Type == corev1.ContainersReady {
					p.Status.Conditions[j].Status = corev1.ConditionTrue
				}
			}
		})
	}
}

// Classify names every way the API server refuses a pod; messages as kube-apiserver v1.36 writes them.
func TestClassify(t *testing.T) {
	tests := []struct {
		msg     string
		reason  Reason
		lasting bool
		what    string
	}{
		{`pods "web-5c-x" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=3, limited: pods=3`, QuotaExceeded, true, `ResourceQuota "pods"`},
		{`pods "web-5c-x" is forbidden: maximum cpu usage per Container is 500m, but limit is 1`, LimitRangeViolation, true, "maximum cpu usage"},
		{`Pod "web-5c-x" is invalid: spec.containers[0].resources.requests: Invalid value: "200m": must be less than or equal to cpu limit of 100m`,
			LimitRangeViolation, true, "default cpu limit 100m is below the request 200m"},
		{`pods "web-5c-x" is forbidden: error looking up service account demo/deployer: serviceaccount "deployer" not found`, PermissionDenied, true, `ServiceAccount "deployer" not found`},
		{`pods "web-5c-x" is forbidden: error looking up service account demo/default: serviceaccount "default" not found`, PermissionDenied, false, `"default"`},
		{`pods "web-5c-x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true`, PermissionDenied, true, `PodSecurity "restricted:latest"`},
		{`admission webhook "validate.kyverno.svc-fail" denied the request: image tag latest is not allowed`, AdmissionDenied, true, `webhook "validate.kyverno.svc-fail"`},
		{`pods "web-5c-x" is forbidden: ValidatingAdmissionPolicy 'no-privileged' with binding 'no-privileged-binding' denied request: privileged pods are not allowed`,
			AdmissionDenied, true, `ValidatingAdmissionPolicy "no-privileged"`},
		{`Internal error occurred: failed calling webhook "pods.policy.example.com": failed to call webhook: Post "https://policy.svc:443/validate?timeout=10s": dial tcp 10.0.0.9:443: connect: connection refused`,
			AdmissionDenied, false, `webhook "pods.policy.example.com" could not be called`},
		{`Pod "web-5c-x" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive`, PodRejected, true, "containerPort"},
		{`etcdserver: request timed out`, PodRejected, false, "request timed out"},
	}
	for _, tc := range tests {
		reason, what, fix, lasting, ok := Classify("Error creating: "+tc.msg, "demo")
		if !ok || reason != tc.reason || lasting != tc.lasting || !strings.Contains(what, tc.what) || fix == "" {
			t.Errorf("Classify(%q) = %s %q (lasting %t, fix %q), want %s %q (lasting %t)", tc.msg, reason, what, lasting, fix, tc.reason, tc.what, tc.lasting)
		}
	}
}

// Pull errors: what the registry or the network said decides between failing at once and waiting.
func TestClassifyPull(t *testing.T) {
	tests := []struct {
		reason, detail string
		want           pullKind
	}{
		{"ErrImagePull", `failed to resolve reference "r.example.com/web:2": r.example.com/web:2: not found`, pullMissing},
		{"ErrImagePull", `manifest unknown: manifest unknown`, pullMissing},
		{"ImagePullBackOff", `pull access denied, repository does not exist or may require authorization: server message: insufficient_scope`, pullRefused},
		{"ErrImagePull", `failed to authorize: failed to fetch anonymous token: unexpected status: 401 Unauthorized`, pullRefused},
		{"ErrImagePull", `unexpected status from HEAD request to https://r.example.com/v2/web/manifests/2: 403 Forbidden`, pullRefused},
		{"InvalidImageName", `couldn't parse image name "Web:2": invalid reference format: repository name must be lowercase`, pullInvalid},
		{"ErrImageNeverPull", `Container image "web:2" is not present with pull policy of Never`, pullInvalid},
		{"ErrImagePull", `failed to do request: Head "https://r.example.com/v2/web/manifests/2": dial tcp 10.0.0.53:443: i/o timeout`, pullTransient},
		{"ErrImagePull", `dial tcp: lookup r.example.com on 10.96.0.10:53: no such host`, pullTransient},
		{"ImagePullBackOff", `unexpected status from HEAD request: 503 Service Unavailable`, pullTransient},
		{"ErrImagePull", `toomanyrequests: You have reached your pull rate limit`, pullTransient},
		{"ErrImagePull", `read tcp 10.0.0.2:51234->10.0.0.53:443: read: connection reset by peer`, pullTransient},
		{"ErrImagePull", `net/http: TLS handshake timeout`, pullTransient},
		{"ImagePullBackOff", `Back-off pulling image "web:2"`, pullTransient},
	}
	for _, tc := range tests {
		if got := classifyPull(tc.reason, tc.detail); got != tc.want {
			t.Errorf("classifyPull(%s, %q) = %s, want %s", tc.reason, tc.detail, got, tc.want)
		}
	}
}

// A rollout its workload's status calls complete while the pods seen are not ready yet (the pods' watch
// behind the workload's) is judged again, so its start-up time is not lost to the next release.
func TestCompleteBeforeItsPodsAreSeenReady(t *testing.T) {
	f := loadFixture(t, filepath.Join("testdata", "deployment-healthy"))
	in := f.in
	in.Now = f.captured
	for i := range in.Pods {
		in.Pods[i].Spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 3}
		for j := range in.Pods[i].Status.Conditions {
			if c := &in.Pods[i].Status.Conditions[j]; c.Type == corev1.PodReady {
				c.Status = corev1.ConditionFalse
			}
		}
	}
	if v := Diagnose(in, DefaultThresholds()); v.Status != Progressing || !strings.Contains(v.Message, "waiting to see its pods ready") {
		t.Fatalf("got %s (%s), want progressing until the pods are seen ready", v.Status, v.Message)
	}
}

// A healthy rollout says how long its pods took to become ready, for the next release's readiness wait;
// pods without a probe were Ready as soon as they ran, which is no start-up time.
func TestHealthyVerdictCarriesStartup(t *testing.T) {
	f := loadFixture(t, filepath.Join("testdata", "deployment-healthy"))
	in := f.in
	in.Now = f.captured
	if v := Diagnose(in, DefaultThresholds()); v.Status != Healthy || v.Startup != 0 {
		t.Fatalf("without probes: got %s with start-up %s, want healthy with none", v.Status, v.Startup)
	}
	for i := range in.Pods {
		in.Pods[i].Spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 3}
	}
	v := Diagnose(in, DefaultThresholds())
	if v.Status != Healthy || v.Startup < time.Second || v.Startup > time.Minute {
		t.Fatalf("got %s with start-up %s, want healthy with a start-up of a second or more (rounded up)", v.Status, v.Startup)
	}
	if PreviousStartup(in) != 0 && PreviousStartup(in) > time.Minute {
		t.Errorf("PreviousStartup = %s", PreviousStartup(in))
	}
}
