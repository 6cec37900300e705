package diagnose

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/rollguard/rollguard/internal/oneline"
	corev1 "k8s.io/api/core/v1"
)

// Pod-creation reasons, read from the FailedCreate events and ReplicaFailure condition of the object that
// creates the new pods (the new ReplicaSet, the StatefulSet, the DaemonSet): QuotaExceeded,
// LimitRangeViolation, PermissionDenied, AdmissionDenied, PodRejected. Admission refused the pod, so there is
// no pod to look at. The same vocabulary names what the pod-level preflight's dry-run refuses (Classify).

var (
	quotaExceeded = regexp.MustCompile(`exceeded quota: ([^,]+), (requested: .*)$`)
	quotaFailed   = regexp.MustCompile(`failed quota: ([^:]+): (.*)$`)
	limitRange    = regexp.MustCompile(`((?:maximum|minimum) \S+ usage per (?:Container|Pod) is [^,\]]+, but (?:limit|request) is [^,\]]+|\S+ max limit to request ratio per (?:Container|Pod) is [^,\]]+)`)
	missingSA     = regexp.MustCompile(`serviceaccount "([^"]+)" not found`)
	podSecurity   = regexp.MustCompile(`violates PodSecurity "([^"]+)": (.*)$`)
	webhookDenied = regexp.MustCompile(`admission webhook "([^"]+)" denied the request: (.*)$`)
	webhookFailed = regexp.MustCompile(`failed calling webhook "([^"]+)": (.*)$`)
	policyDenied  = regexp.MustCompile(`ValidatingAdmissionPolicy '([^']+)' with binding '([^']+)' denied request: (.*)$`)
	// A LimitRange default limit below the template's request makes the pod invalid only after defaulting:
	// the template itself passed validation with the Deployment.
	limitDefaulted = regexp.MustCompile(`(spec\.\S*containers\[\d+\]\.resources\.requests): Invalid value: "([^"]+)": must be less than or equal to (\S+) limit(?: of (\S+))?`)
	podInvalid     = regexp.MustCompile(`(?i)pods? "[^"]*" is invalid: (.*)$`)
	statefulPod    = regexp.MustCompile(`^Create Pod (\S+) in StatefulSet`)
)

// createFindings: every refusal gets a named reason. Refusals of the pod itself (Pod Security, a webhook's
// or policy's denial, a pod invalid after defaulting) are deterministic and fail at once. Refusals that
// name a namespace object someone may be fixing right now (exceeded quota, a LimitRange's maximum or
// minimum, a missing ServiceAccount: clearable) must last th.RefusalGrace; the ReplicaSet controller's next
// retry creates the pods once it is fixed. "exceeded quota" waits th.QuotaGrace while pods of the workload
// are terminating (a rolling update frees their quota within seconds). Errors that may pass on a retry by
// themselves (an unreachable webhook, a new namespace's default ServiceAccount, anything unreadable) must
// persist for th.QuotaGrace. Nothing counts once the creator has all its pods.
func createFindings(r *rollout, ev events, now time.Time, th Thresholds) []finding {
	if !r.creating || r.creatorName == "" {
		return nil
	}
	creator := objectKey(r.creatorKind, r.creatorName)
	byReason := map[Reason]*finding{}
	var order []Reason
	lasts := map[Reason]bool{}
	atOnce := map[Reason]bool{} // a lasting refusal of the pod itself is among them
	add := func(msg string, since time.Time, e Evidence) {
		reason, what, fix, lasting := classifyCreate(msg, r.namespace)
		f := byReason[reason]
		lasts[reason] = lasts[reason] || lasting
		atOnce[reason] = atOnce[reason] || lasting && !clearable(msg)
		if f == nil {
			f = &finding{reason: reason, since: since, object: creator, fix: fix,
				message: fmt.Sprintf("%s %s cannot create pods: %s", r.creatorKind, r.creatorName, what)}
			byReason[reason] = f
			order = append(order, reason)
		}
		if since.Before(f.since) {
			f.since = since
		}
		f.evidence = append(f.evidence, e)
	}
	for _, e := range ev.about(r.creatorKind, r.creatorName, r.creatorUID, "FailedCreate") {
		if m := statefulPod.FindStringSubmatch(e.Message); m != nil && hasPod(r.allPods, m[1]) {
			continue // that pod was created since
		}
		add(e.Message, firstSeen(e), Evidence{Object: creator, Text: eventLine(e)})
	}
	if c := r.replicaFailure; c != nil {
		add(c.message, c.since, c.evidence())
	}
	for _, f := range byReason {
		f.evidence = mergeByPod(f.evidence)
	}
	var out []finding
	for _, reason := range order {
		f := byReason[reason]
		var grace time.Duration
		switch {
		case !lasts[reason] || reason == QuotaExceeded && r.terminating:
			grace = th.QuotaGrace
		case !atOnce[reason]:
			grace = th.RefusalGrace
		}
		*f = f.timed(now, f.since, grace)
		if reason == QuotaExceeded && !r.terminating && r.advancing(now) {
			// A new pod on its way to ready lets the controller remove an old one, which frees the quota
			// the next pod needs: a rollout with room for one surge pod proceeds that way.
			f.confirmed, f.due = false, time.Time{}
			f.message += " (waiting: new pods are becoming ready, which frees quota)"
		}
		out = append(out, *f)
	}
	return out
}

// Classify names why the API server refused a pod (a FailedCreate message, or the pod-level preflight's
// dry-run error): the reason, what was refused, a fix, and whether the refusal lasts (false: it may pass on a
// retry, such as an unreachable webhook). ok is false only for an empty message.
func Classify(msg, namespace string) (reason Reason, what, fix string, lasting, ok bool) {
	if strings.TrimSpace(msg) == "" {
		return "", "", "", false, false
	}
	reason, what, fix, lasting = classifyCreate(msg, namespace)
	return reason, oneline.Fold(what), oneline.Fold(fix), lasting, true
}

// classifyCreate maps an admission refusal to a reason, what was refused, a fix, and whether it lasts.
func classifyCreate(msg, ns string) (reason Reason, what, fix string, lasting bool) {
	if m := quotaExceeded.FindStringSubmatch(msg); m != nil {
		return QuotaExceeded, fmt.Sprintf("exceeded ResourceQuota %q (%s)", m[1], m[2]),
			fmt.Sprintf("raise ResourceQuota %q in namespace %s or lower replicas/requests (%s); maxSurge: 0 lets a rolling update fit a full quota", m[1], ns, m[2]), true
	}
	if m := quotaFailed.FindStringSubmatch(msg); m != nil {
		return QuotaExceeded, fmt.Sprintf("ResourceQuota %q refused the pod: %s", m[1], m[2]),
			fmt.Sprintf("ResourceQuota %q in namespace %s requires it: %s", m[1], ns, m[2]), true
	}
	if ms := limitRange.FindAllString(msg, -1); ms != nil {
		what := strings.Join(ms, "; ")
		return LimitRangeViolation, "LimitRange refused it: " + what,
			fmt.Sprintf("set the containers' resources within the LimitRange of namespace %s (%s)", ns, what), true
	}
	if m := limitDefaulted.FindStringSubmatch(msg); m != nil {
		limit := m[3] + " limit"
		if m[4] != "" {
			limit += " " + m[4]
		}
		return LimitRangeViolation, fmt.Sprintf("the LimitRange's default %s is below the request %s (%s)", limit, m[2], m[1]),
			fmt.Sprintf("set resources.limits.%s explicitly (at least %s) or lower the request; the LimitRange of namespace %s sets a default limit of %s", m[3], m[2], ns, m[4]), true
	}
	if m := missingSA.FindStringSubmatch(msg); m != nil {
		// A new namespace gets its default ServiceAccount a moment after it is created.
		return PermissionDenied, fmt.Sprintf("ServiceAccount %q not found", m[1]),
			fmt.Sprintf("create ServiceAccount %q in namespace %s, or fix serviceAccountName in the pod template", m[1], ns), m[1] != "default"
	}
	if m := podSecurity.FindStringSubmatch(msg); m != nil {
		return PermissionDenied, fmt.Sprintf("violates PodSecurity %q: %s", m[1], m[2]),
			fmt.Sprintf("make the pod template meet Pod Security level %q of namespace %s: %s", m[1], ns, m[2]), true
	}
	if m := webhookDenied.FindStringSubmatch(msg); m != nil {
		return AdmissionDenied, fmt.Sprintf("admission webhook %q denied it: %s", m[1], m[2]),
			fmt.Sprintf("change the pod template to satisfy admission webhook %q: %s", m[1], m[2]), true
	}
	if m := policyDenied.FindStringSubmatch(msg); m != nil {
		return AdmissionDenied, fmt.Sprintf("ValidatingAdmissionPolicy %q (binding %q) denied it: %s", m[1], m[2], m[3]),
			fmt.Sprintf("change the pod template to satisfy ValidatingAdmissionPolicy %q: %s", m[1], m[3]), true
	}
	if m := webhookFailed.FindStringSubmatch(msg); m != nil {
		return AdmissionDenied, fmt.Sprintf("admission webhook %q could not be called: %s", m[1], m[2]),
			fmt.Sprintf("admission webhook %q must answer for pods to be created: check its service and endpoints", m[1]), false
	}
	if m := podInvalid.FindStringSubmatch(msg); m != nil {
		return PodRejected, "the pod is invalid: " + m[1],
			"fix the pod template (it became invalid after the API server's defaulting and mutating admission): " + m[1], true
	}
	if i := strings.Index(msg, "is forbidden: "); i >= 0 {
		rest := msg[i+len("is forbidden: "):]
		return PermissionDenied, "forbidden: " + rest, PermissionDenied.Fix() + ": " + rest, true
	}
	return PodRejected, strings.TrimPrefix(msg, "Error creating: "), PodRejected.Fix(), false
}

// clearable is true for a refusal that names a namespace object someone may be fixing right now (the
// quota, a LimitRange's maximum or minimum, a ServiceAccount) rather than the pod itself.
func clearable(msg string) bool {
	return quotaExceeded.MatchString(msg) || quotaFailed.MatchString(msg) || limitRange.MatchString(msg) || missingSA.MatchString(msg)
}

// settle is how long after a new pod became ready the controller is given to remove an old pod.
const settle = 2 * time.Second

// advancing is true while a new pod is on its way to ready, or just got there.
func (r *rollout) advancing(now time.Time) bool {
	for i := range r.newPods {
		p := &r.newPods[i]
		if disrupted(p) || p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded || p.DeletionTimestamp != nil {
			continue
		}
		c := conditionOf(p, corev1.PodReady)
		if c == nil || c.Status != corev1.ConditionTrue || now.Sub(c.LastTransitionTime.Time) < settle {
			return true
		}
	}
	return false
}

// podName matches the generated pod name in admission messages, which differs on every retry.
var podName = regexp.MustCompile(`pods "[^"]*"`)

// mergeByPod folds FailedCreate lines that differ only by the generated pod name (each retry of a ReplicaSet
// is a new event) into the first, with the total count: `... (x7)`.
func mergeByPod(list []Evidence) []Evidence {
	var out []Evidence
	counts := map[string]int{}
	index := map[string]int{}
	for _, e := range list {
		key := e.Object + podName.ReplaceAllString(countSuffix.ReplaceAllString(e.Text, ""), `pods ""`)
		n := 1
		if m := countSuffix.FindStringSubmatch(e.Text); m != nil {
			fmt.Sscan(m[1], &n)
		}
		if i, ok := index[key]; ok {
			counts[key] += n
			out[i].Text = countSuffix.ReplaceAllString(out[i].Text, "") + fmt.Sprintf(" (x%d)", counts[key])
			continue
		}
		index[key], counts[key] = len(out), n
		out = append(out, e)
	}
	return out
}

var countSuffix = regexp.MustCompile(` \(x(\d+)\)$`)

func hasPod(pods []corev1.Pod, name string) bool {
	for i := range pods {
		if pods[i].Name == name {
			return true
		}
	}
	return false
}
