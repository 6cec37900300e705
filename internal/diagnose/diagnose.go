package diagnose

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rollguard/rollguard/internal/oneline"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Where each failure reason is decided:
//
//	pods.go      ImagePullFailed, CrashLoop                                 (container states of new pods)
//	readiness.go ReadinessFailed: running, never ready, past its probes and the app's history
//	config.go    ConfigError, and whether a missing ConfigMap/Secret may still come
//	pull.go      image missing (fails at once) vs registry unreachable (waits ImagePullGrace)
//	startup.go   how long the previous revision took to become ready, and readiness gates
//	create.go    QuotaExceeded, LimitRangeViolation, PermissionDenied,      (FailedCreate on the pod creator)
//	             AdmissionDenied, PodRejected
//	schedule.go  Unschedulable, knowing whether the cluster can grow        (PodScheduled=False, FailedScheduling)
//	workload.go  ProgressDeadlineExceeded, and Healthy/Progressing          (the workload's own status)
//	custom.go    CustomResourceFailed, and custom resources' readiness      (kstatus-style status.conditions)
//	job.go       JobFailed, VerificationFailed (a verify Job), Job progress (the Job's own conditions)
//	bake.go      the bake window: restarts, crash loops and readiness lost after the release was healthy
//	diagnose.go  Timeout, and which finding wins when several fire          (this file)
//	wait.go      when a wait starts and ends: whole-second API times, the caller's sightings
//	revision.go  which pods belong to the new revision;  events.go  event times, counts and lines
//	fix.go       the generic remedy per reason (verdicts carry a concrete one from the rule that fired)

// Input is everything Diagnose looks at. The caller gathers it; Diagnose never talks to a cluster or a clock.
type Input struct {
	// Now is the caller's clock; grace windows are measured against it.
	Now time.Time
	// Started is when the rollout began (apply time); events last seen before it are ignored.
	Started time.Time
	// Deadline is the overall timeout; zero means none. Past it, an unfinished rollout fails with Timeout.
	Deadline time.Time
	// Workload is a *appsv1.Deployment, *appsv1.StatefulSet, *appsv1.DaemonSet or *batchv1.Job, or a custom
	// resource as *unstructured.Unstructured (custom.go).
	Workload runtime.Object
	// ReplicaSets are those owned by the Deployment, all revisions.
	ReplicaSets []appsv1.ReplicaSet
	// Pods are the workload's pods, all revisions.
	Pods []corev1.Pod
	// Events are those whose involvedObject is the workload, its ReplicaSets or its pods.
	Events []corev1.Event
	// Logs maps "pod/container" to the last lines of the previous (crashed) container, and OutputKey to
	// what a running container has written so far, when the API gave them.
	Logs map[string]string
	// KnownStartup is how long the previous healthy revision's pods took from start to Ready, as the caller
	// remembers it (pods gone since, a release record); zero when unknown. The larger of it and what the
	// old pods in Pods show (PreviousStartup) sets the readiness wait.
	KnownStartup time.Duration
	// Autoscaler says whether the cluster can add nodes for an unschedulable pod.
	Autoscaler Autoscaler
	// Config says, for each ConfigMap or Secret (or key of one) the kubelet reported missing
	// (MissingConfig), whether it exists now, keyed by ConfigRef.String(). A ref not in the map was not
	// looked up (no permission, a caller that does not look): the diagnosis then waits as if it may appear.
	Config map[string]bool
	// Seen is when the caller first saw each state a rule counts a wait from, keyed as Verdict.Anchors
	// names them: the state began no later than that, which bounds a time the API kept in whole seconds
	// better than assuming the latest it can have been (wait.go). Nil: no sightings (a one-shot status).
	Seen map[string]time.Time
	// Verification marks a Job the release runs to verify itself once every workload is healthy (its verify
	// phase): its failure is VerificationFailed, not JobFailed.
	Verification bool
}

// Autoscaler is what the caller found out about node autoscaling in the cluster.
type Autoscaler string

const (
	// AutoscalerUnknown: not looked at, or not readable; treated as a cluster that may grow.
	AutoscalerUnknown Autoscaler = ""
	// AutoscalerNone: no cluster-autoscaler status ConfigMap and no Karpenter NodePool API: the nodes are all
	// there will be.
	AutoscalerNone Autoscaler = "none"
	// ClusterAutoscaler: kube-system/cluster-autoscaler-status exists.
	ClusterAutoscaler Autoscaler = "cluster-autoscaler"
	// Karpenter: the karpenter.sh NodePool API is served.
	Karpenter Autoscaler = "karpenter"
)

// Thresholds are the grace windows that separate "not yet" from "failed". The CLI exposes them as flags.
type Thresholds struct {
	// ImagePullGrace tolerates transient pull errors (timeouts, refused connections, DNS, TLS, 5xx, 429)
	// this long, back-off included. Definitive ones (not found, unauthorized, invalid reference,
	// ErrImageNeverPull) fail at once; see pull.go.
	ImagePullGrace time.Duration
	// CrashLoopRestarts is the restart count at which a container that keeps terminating is a crash loop even
	// before the kubelet reports CrashLoopBackOff.
	CrashLoopRestarts int32
	// ReadinessSlack is added to what the probes allow (initialDelaySeconds + periodSeconds ×
	// failureThreshold of the readiness probe, plus the startup probe's) before a running, unready container
	// fails, when the app has no history (a first deploy, old pods without a probe), and at least for a
	// container that restarted or lost readiness, whose wait the first start's history does not bound.
	ReadinessSlack time.Duration
	// HistorySlack replaces ReadinessSlack when the previous revision's start-up time is known: the wait of
	// a container's first start is then the larger of the probe budget and StartupMultiple × that time, plus
	// HistorySlack.
	HistorySlack time.Duration
	// StartupMultiple is how many times its previous revision's start-up time a new pod may take.
	StartupMultiple int
	// UnschedulableGrace is how long a new pod may stay unschedulable on a cluster that cannot grow (no
	// cluster-autoscaler, no Karpenter).
	UnschedulableGrace time.Duration
	// ScaleUpGrace is how long a new pod may stay unschedulable where the cluster may grow but the
	// autoscaler has not said whether it will, and while pods of the workload terminate (their room is
	// about to free up).
	ScaleUpGrace time.Duration
	// ScaleUpWait caps the wait once the autoscaler said it is adding nodes (TriggeredScaleUp).
	ScaleUpWait time.Duration
	// QuotaGrace is how long "exceeded quota" is tolerated while pods of the workload are terminating, since
	// the quota they hold is about to be released. With nothing terminating, quota failures are immediate.
	// Creation errors that name no known cause (PodRejected from an unreadable message, an unreachable
	// webhook, a namespace's default ServiceAccount not created yet) wait as long.
	QuotaGrace time.Duration
	// RefusalGrace is how long a pod-creation refusal that names a namespace object someone may be fixing
	// right now (exceeded quota, a LimitRange's maximum or minimum, a missing ServiceAccount) must last
	// before it fails. The ReplicaSet controller retries a refused pod with back-off (about 0.6, 1.3, 2.6,
	// 5 and 10 s after the first refusal), so a fix made within about 5 s creates the pods within it.
	// Refusals of the pod itself (Pod Security, a webhook's or policy's denial, a pod invalid after
	// defaulting) fail at once; the pod preflight refuses all of them before a deploy applies anything.
	RefusalGrace time.Duration
	// ConfigGrace is how long a container may wait for a ConfigMap, Secret or key that is still missing
	// (Input.Config says so) before ConfigError fails: an operator (External Secrets, Sealed Secrets) or a
	// sibling step may create it moments after the apply. Once it exists the kubelet creates the container
	// at its next retry (it retries every 10 to 15 s), so one that exists now, or that nobody could look
	// up, is waited for QuotaGrace.
	ConfigGrace time.Duration
	// ConditionGrace is how long a custom resource may report Ready=False with a failing reason (its
	// controller may retry) before that fails the release; Stalled fails at once.
	ConditionGrace time.Duration
	// LogLines is how many trailing lines of a crashed container's log go into the evidence.
	LogLines int
}

// DefaultThresholds are tuned to report a broken release within seconds without failing a healthy but slow one.
func DefaultThresholds() Thresholds {
	return Thresholds{
		ImagePullGrace:     time.Minute,
		CrashLoopRestarts:  3,
		ReadinessSlack:     10 * time.Second,
		HistorySlack:       time.Second,
		StartupMultiple:    2,
		UnschedulableGrace: 3 * time.Second,
		ScaleUpGrace:       30 * time.Second,
		ScaleUpWait:        5 * time.Minute,
		QuotaGrace:         30 * time.Second,
		RefusalGrace:       10 * time.Second,
		ConfigGrace:        3 * time.Second,
		ConditionGrace:     30 * time.Second,
		LogLines:           5,
	}
}

// finding is one rule's conclusion about one object.
type finding struct {
	reason Reason
	// confirmed is false for a signal still inside its grace window: it does not fail the rollout, but it
	// explains a Progressing verdict and a Timeout.
	confirmed bool
	since     time.Time
	object    string
	message   string
	fix       string
	evidence  []Evidence
	// transient and pullAttempts describe an image pull error: one the next pull may fix, and how many
	// pulls failed so far (pull.go).
	transient    bool
	pullAttempts int32
	// due is, for a finding a wait has not confirmed yet, when it will be if nothing changes; anchor is the
	// Input.Seen key of the state that wait counts from, if the rule can use a sighting (wait.go).
	due    time.Time
	anchor string
}

// Diagnose decides whether the rollout in is Healthy, still Progressing, or Failed and why.
func Diagnose(in Input, th Thresholds) Verdict {
	if u, ok := in.Workload.(*unstructured.Unstructured); ok {
		return customVerdict(u, in, th) // custom.go
	}
	r, err := newRollout(in)
	if err != nil {
		return Verdict{Status: Progressing, Message: err.Error()}
	}
	v := Verdict{Workload: r.ref(), Progress: r.progress}
	if r.complete {
		v.Status, v.Message = Healthy, "rollout complete"
		v.Startup = medianStartup(r.newPods) // what the next release's readiness wait learns from
		if v.Startup == 0 && readyNotSeen(r.newPods) {
			// The workload's status counts its pods ready before the caller's cache of pods (another watch)
			// shows one: judge again in a moment, or the start-up time the next release (and a rollback to
			// this one) learns from is lost.
			v.Status, v.Message = Progressing, "rollout complete; waiting to see its pods ready"
		}
		return v
	}
	ev := indexEvents(in.Events, in.Started)
	var found []finding
	found = append(found, podFindings(r, ev, in, th)...)        // pods.go
	found = append(found, gateFindings(r)...)                   // startup.go
	found = append(found, createFindings(r, ev, in.Now, th)...) // create.go
	found = append(found, scheduleFindings(r, ev, in, th)...)   // schedule.go
	found = append(found, deadlineFindings(r)...)               // workload.go
	found = append(found, jobFindings(r, in, th)...)            // job.go
	return decide(v, r, found, in.Now, in.Deadline)
}

// Precedence, when several rules fire: the most specific cause first, then the earliest.
//
//  1. The release itself is broken (same result on every retry): ConfigError, ImagePullFailed, CrashLoop,
//     LimitRangeViolation, PermissionDenied, AdmissionDenied, PodRejected.
//  2. The cluster lacks room for it: QuotaExceeded, Unschedulable.
//  3. It runs but never becomes ready: ReadinessFailed (a crash or missing capacity explains unreadiness, not
//     the reverse).
//  4. The controller's generic verdict: ProgressDeadlineExceeded (it says "stuck", not why).
//
// Within a tier the signal that appeared first wins (later ones are often consequences); ties follow the
// order above. Timeout is only used when nothing else is confirmed and the deadline has passed.
func precedence(r Reason) (tier, order int) {
	switch r {
	case ConfigError:
		return 1, 0
	case ImagePullFailed:
		return 1, 1
	case CrashLoop:
		return 1, 2
	case LimitRangeViolation:
		return 1, 3
	case PermissionDenied:
		return 1, 4
	case AdmissionDenied:
		return 1, 5
	case PodRejected:
		return 1, 6
	case JobFailed:
		return 1, 7
	case CustomResourceFailed:
		return 1, 8
	case VerificationFailed:
		return 1, 9
	case QuotaExceeded:
		return 2, 0
	case Unschedulable:
		return 2, 1
	case ReadinessFailed:
		return 3, 0
	case ProgressDeadlineExceeded:
		return 4, 0
	}
	return 5, 0
}

func byPrecedence(a, b finding) int {
	ta, oa := precedence(a.reason)
	tb, ob := precedence(b.reason)
	if ta != tb {
		return ta - tb
	}
	if c := a.since.Compare(b.since); c != 0 {
		return c
	}
	return oa - ob
}

// maxEvidence keeps a verdict readable when dozens of pods fail the same way.
const maxEvidence = 12

func decide(v Verdict, r *rollout, found []finding, now, deadline time.Time) Verdict {
	slices.SortStableFunc(found, byPrecedence)
	var confirmed, pending []finding
	for _, f := range found {
		if f.confirmed {
			confirmed = append(confirmed, f)
		} else {
			pending = append(pending, f)
		}
	}
	switch {
	case len(confirmed) > 0:
		best := confirmed[0]
		same := sameReason(confirmed, best.reason)
		v.Status, v.Reason, v.Since, v.Fix = Failed, best.reason, best.since, best.fix
		v.Message = best.message + spread(same, r)
		v.Evidence = collect(same)
	case !deadline.IsZero() && !now.Before(deadline):
		v.Status, v.Reason, v.Since, v.Fix = Failed, Timeout, deadline, Timeout.Fix()
		v.Message = "rollout did not complete before the deadline: " + r.waiting
		if len(pending) > 0 {
			v.Message += "; " + pending[0].message
			// Not confirmed means still inside its own budget (a probe's, a grace window): the deadline,
			// not the probe, is what ran out first.
			v.Fix = "the rollout was still inside its own allowance (" + string(pending[0].reason) + " not confirmed) when the timeout ran out: raise --timeout if it is just slow; if it never gets there: " + pending[0].fix
		}
		v.Evidence = collect(pending)
	default:
		v.Status, v.Message = Progressing, r.waiting
		if len(pending) > 0 {
			v.Message += "; not failed yet: " + pending[0].message
			v.Unconfirmed = pending[0].reason
		}
		for _, f := range pending {
			// Only a due time still ahead: a caller waking at one already past would judge again at once.
			if f.due.After(now) && (v.Due.IsZero() || f.due.Before(v.Due)) {
				v.Due = f.due
			}
			if f.anchor != "" {
				v.Anchors = append(v.Anchors, f.anchor)
			}
		}
		v.Evidence = collect(pending)
	}
	v.Message = oneline.Fold(v.Message)
	return v
}

func sameReason(list []finding, r Reason) []finding {
	var out []finding
	for _, f := range list {
		if f.reason == r {
			out = append(out, f)
		}
	}
	return out
}

// spread says how many of the new pods share the failure, e.g. " (3/3 new pods)".
func spread(same []finding, r *rollout) string {
	pods := map[string]bool{}
	for _, f := range same {
		if strings.HasPrefix(f.object, "Pod/") {
			pods[f.object] = true
		}
	}
	if len(pods) < 2 {
		return ""
	}
	return fmt.Sprintf(" (%d/%d new pods)", len(pods), len(r.newPods))
}

func collect(list []finding) []Evidence {
	var out []Evidence
	seen := map[Evidence]bool{}
	for _, f := range list {
		for _, e := range f.evidence {
			if !seen[e] {
				seen[e] = true
				out = append(out, e)
			}
		}
	}
	if len(out) > maxEvidence {
		more := len(out) - maxEvidence + 1
		out = append(out[:maxEvidence-1], Evidence{Text: fmt.Sprintf("… and %d more", more)})
	}
	return out
}
