package diagnose

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rollguard/rollguard/internal/oneline"
	corev1 "k8s.io/api/core/v1"
)

// Container-state reasons, read from the new revision's pods: ImagePullFailed, CrashLoop, ConfigError
// (config.go), ReadinessFailed (readiness.go).

// containerStatuses are the statuses of all of a pod's containers, init containers first.
func containerStatuses(p *corev1.Pod) []corev1.ContainerStatus {
	return append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
}

// podFindings inspects every container (init containers included) of every new pod.
func podFindings(r *rollout, ev events, in Input, th Thresholds) []finding {
	var out []finding
	startup := appHistory(r, in)
	for i := range r.newPods {
		p := &r.newPods[i]
		if disrupted(p) {
			continue // evicted or preempted: its replacement is judged instead
		}
		specs := containerSpecs(p)
		for _, cs := range containerStatuses(p) {
			c := containerCheck{pod: p, spec: specs[cs.Name], status: cs, events: containerEvents(ev, p, cs.Name), now: in.Now, th: th, startup: startup, config: in.Config, seen: in.Seen}
			if w := cs.State.Waiting; w != nil {
				switch w.Reason {
				case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
					out = append(out, c.imagePull())
					continue
				case "CreateContainerConfigError", "CreateContainerError":
					out = append(out, c.configError())
					continue
				}
			}
			if f, ok := c.crashLoop(in.Logs); ok {
				out = append(out, f)
				if f.confirmed {
					continue
				}
			}
			if f, ok := c.readiness(in.Logs); ok {
				out = append(out, f)
			}
		}
	}
	judgePulls(r, out, th)
	return out
}

// containerCheck holds what the container rules look at for one container.
type containerCheck struct {
	pod    *corev1.Pod
	spec   *corev1.Container
	status corev1.ContainerStatus
	events []corev1.Event
	now    time.Time
	th     Thresholds
	// startup is how long the app took to become ready (startup.go); zero when unknown.
	startup history
	// config is Input.Config: whether what the kubelet reported missing exists now.
	config map[string]bool
	// seen is Input.Seen: when the caller first saw the states waits count from.
	seen map[string]time.Time
}

func (c containerCheck) object() string { return objectKey("Pod", c.pod.Name) }

// imagePull: a definitive error (the image does not exist, access is refused, the reference is invalid; see
// pull.go) fails at once. A transient one (network, DNS, TLS, 5xx, rate limits) is tolerated for
// th.ImagePullGrace, even through the kubelet's back-off: the next pull often works. judgePulls fails it
// earlier when every new pod keeps failing that way after transientPullRetries pulls.
func (c containerCheck) imagePull() finding {
	w := c.status.State.Waiting
	image := c.image()
	pulls := eventsWithReason(c.events, "Failed", "BackOff", "ErrImageNeverPull", "InspectFailed")
	since := earliest(pulls, c.pod.CreationTimestamp.Time)
	detail, attempts := w.Message, int32(0)
	for _, e := range pulls {
		// The kubelet's "Failed to pull image" event carries the registry's own answer; prefer it.
		if m := failedPull.FindStringSubmatch(e.Message); m != nil {
			detail = m[1]
			attempts += occurrences(e)
		}
	}
	if detail == "" {
		detail = w.Reason
	}
	detail = grpcPrefix.ReplaceAllString(detail, "") // the CRI's transport wrapping says nothing to a user
	detail = withoutImageEchoes(detail, image)
	kind := classifyPull(w.Reason, detail)
	f := finding{
		reason:       ImagePullFailed,
		since:        since,
		object:       c.object(),
		message:      fmt.Sprintf("pod %s: container %s cannot pull image %q: %s: %s", c.pod.Name, c.status.Name, image, kind, clip(detail)),
		fix:          pullFix(kind, w.Reason, image),
		evidence:     append([]Evidence{c.stateEvidence()}, eventEvidence(pulls)...),
		pullAttempts: attempts,
		transient:    !kind.definitive(),
	}
	if kind.definitive() {
		f.confirmed = true
		return f
	}
	return f.timed(c.now, since, c.th.ImagePullGrace)
}

// judgePulls fails transient pull errors before the grace when every new pod has one and each has failed
// transientPullRetries pulls: the registry is down for this release, not blipping. Those still tolerated
// say so in their message.
func judgePulls(r *rollout, found []finding, th Thresholds) {
	persistent := len(r.newPods) > 0
	failing := map[string]bool{}
	for _, f := range found {
		if f.reason == ImagePullFailed && f.transient && f.pullAttempts >= transientPullRetries {
			failing[f.object] = true
		}
	}
	for i := range r.newPods {
		persistent = persistent && failing[objectKey("Pod", r.newPods[i].Name)]
	}
	for i := range found {
		f := &found[i]
		switch {
		case f.reason != ImagePullFailed || !f.transient || f.confirmed:
		case persistent:
			f.confirmed = true
			f.message += fmt.Sprintf(" (every new pod failed %d pulls or more)", transientPullRetries)
		default:
			f.message += fmt.Sprintf(" (transient: tolerated for %s)", th.ImagePullGrace)
		}
	}
}

// crashLoop: a CrashLoopBackOff state fails at once; so does a container that terminated and restarted
// th.CrashLoopRestarts times. Fewer restarts are a pending finding.
func (c containerCheck) crashLoop(logs map[string]string) (finding, bool) {
	cs := c.status
	backoff := cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
	term := cs.LastTerminationState.Terminated
	if cs.State.Terminated != nil {
		term = cs.State.Terminated
	}
	if !backoff && (term == nil || cs.RestartCount == 0) {
		return finding{}, false
	}
	if !backoff && cs.Ready && cs.RestartCount < c.th.CrashLoopRestarts {
		return finding{}, false // restarted a little but serving now: nothing to explain
	}
	backoffs := eventsWithReason(c.events, "BackOff")
	since := c.pod.CreationTimestamp.Time
	if term != nil && !term.FinishedAt.IsZero() {
		since = term.FinishedAt.Time
	}
	since = earliest(backoffs, since)

	msg := fmt.Sprintf("pod %s: container %s", c.pod.Name, cs.Name)
	ev := []Evidence{c.stateEvidence()}
	if term != nil {
		msg += fmt.Sprintf(" exited with code %d", term.ExitCode)
		if term.Reason != "" {
			msg += fmt.Sprintf(" (%s)", term.Reason)
		}
		t := fmt.Sprintf("container %s: last terminated %s, exit code %d", cs.Name, term.Reason, term.ExitCode)
		if term.Message != "" {
			t += ": " + clip(term.Message)
		}
		ev = append(ev, Evidence{Object: c.object(), Text: t})
	} else {
		msg += " keeps crashing"
	}
	msg += fmt.Sprintf(", restarted %d time", cs.RestartCount)
	if cs.RestartCount != 1 {
		msg += "s"
	}
	ev = append(ev, eventEvidence(backoffs)...)
	fix := c.crashFix(term)
	if lines := tail(logs[c.pod.Name+"/"+cs.Name], c.th.LogLines); len(lines) > 0 {
		// The log is captured now: after a rollback the pod (and `kubectl logs --previous`) is gone.
		if term == nil || term.Reason != "OOMKilled" {
			fix = fmt.Sprintf("container %s exits soon after starting: its last log lines are in the evidence; check its command, args, env and config", cs.Name)
		}
		msg += fmt.Sprintf("; last log line: %q", lines[len(lines)-1])
		for _, l := range lines {
			ev = append(ev, Evidence{Object: c.object(), Text: fmt.Sprintf("container %s log: %s", cs.Name, l)})
		}
	}
	return finding{
		reason:    CrashLoop,
		confirmed: backoff || cs.RestartCount >= c.th.CrashLoopRestarts,
		since:     since,
		object:    c.object(),
		message:   msg,
		fix:       fix,
		evidence:  ev,
	}, true
}

func (c containerCheck) crashFix(term *corev1.ContainerStateTerminated) string {
	name := c.status.Name
	if term != nil && term.Reason == "OOMKilled" {
		limit := "no memory limit"
		if c.spec != nil {
			if q, ok := c.spec.Resources.Limits[corev1.ResourceMemory]; ok {
				limit = "memory limit " + q.String()
			}
		}
		return fmt.Sprintf("container %s was OOMKilled (%s): raise resources.limits.memory or lower its memory use", name, limit)
	}
	return fmt.Sprintf("container %s exits soon after starting: read `kubectl logs %s -c %s --previous` and check its command, args, env and config",
		name, c.pod.Name, name)
}

var (
	grpcPrefix = regexp.MustCompile(`rpc error: code = \w+ desc = `)
	failedPull = regexp.MustCompile(`^Failed to pull image "[^"]*": (.*)$`)
)

// stateEvidence renders the container's state, e.g. `container web: waiting ImagePullBackOff: <message>`.
func (c containerCheck) stateEvidence() Evidence {
	cs, s := c.status, ""
	switch {
	case cs.State.Waiting != nil:
		s = fmt.Sprintf("waiting %s", cs.State.Waiting.Reason)
		if cs.State.Waiting.Message != "" {
			s += ": " + clip(cs.State.Waiting.Message)
		}
	case cs.State.Running != nil:
		s = fmt.Sprintf("running since %s, ready=%t", cs.State.Running.StartedAt.UTC().Format(time.RFC3339), cs.Ready)
	case cs.State.Terminated != nil:
		s = fmt.Sprintf("terminated %s, exit code %d", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
	default:
		s = "no state reported"
	}
	if cs.RestartCount > 0 {
		s += fmt.Sprintf(" (restarts: %d)", cs.RestartCount)
	}
	return Evidence{Object: c.object(), Text: fmt.Sprintf("container %s: %s", cs.Name, s)}
}

func (c containerCheck) image() string {
	if c.spec != nil {
		return c.spec.Image
	}
	return c.status.Image
}

// isPlainInit is true for an init container that runs to completion (not a restartable sidecar).
func (c containerCheck) isPlainInit() bool {
	for _, ic := range c.pod.Spec.InitContainers {
		if ic.Name == c.status.Name {
			return ic.RestartPolicy == nil || *ic.RestartPolicy != corev1.ContainerRestartPolicyAlways
		}
	}
	return false
}

func containerSpecs(p *corev1.Pod) map[string]*corev1.Container {
	m := map[string]*corev1.Container{}
	for i := range p.Spec.InitContainers {
		m[p.Spec.InitContainers[i].Name] = &p.Spec.InitContainers[i]
	}
	for i := range p.Spec.Containers {
		m[p.Spec.Containers[i].Name] = &p.Spec.Containers[i]
	}
	return m
}

// containerEvents returns the pod's events about one container. The kubelet sets fieldPath to
// spec.containers{name} (or initContainers); events without a fieldPath are about the whole pod and kept.
func containerEvents(ev events, p *corev1.Pod, name string) []corev1.Event {
	var out []corev1.Event
	for _, e := range ev.about("Pod", p.Name, p.UID) {
		fp := e.InvolvedObject.FieldPath
		if fp == "" || strings.HasSuffix(fp, "{"+name+"}") {
			out = append(out, e)
		}
	}
	return out
}

func eventsWithReason(list []corev1.Event, reasons ...string) []corev1.Event {
	var out []corev1.Event
	for _, e := range list {
		if slices.Contains(reasons, e.Reason) {
			out = append(out, e)
		}
	}
	return out
}

// eventsSaying is eventsWithReason(list, reason) narrowed to the events whose message starts with one of
// prefixes: a reason the kubelet gives to several kinds of trouble ("Failed", "Unhealthy").
func eventsSaying(list []corev1.Event, reason string, prefixes ...string) []corev1.Event {
	var out []corev1.Event
	for _, e := range eventsWithReason(list, reason) {
		if slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(e.Message, p) }) {
			out = append(out, e)
		}
	}
	return out
}

// secretAssignment matches "password=hunter2"-style pairs so crash logs never leak credentials into a report.
var secretAssignment = regexp.MustCompile(`(?i)\b([\w.-]*(?:password|passwd|secret|token|api[_-]?key|credential)[\w.-]*)(["']?\s*[:=]\s*)("[^"]*"|'[^']*'|\S+)`)

// tail returns the last n non-empty log lines, clipped and with secret-looking values redacted.
func tail(log string, n int) []string {
	if n <= 0 {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(log, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, clip(secretAssignment.ReplaceAllString(l, "${1}${2}[redacted]")))
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// withoutImageEchoes drops the runtime's layers of context that repeat the image the message already names
// (containerd 1.x: `failed to pull and unpack image "x": failed to resolve reference "x": "x": not found`;
// 2.x, as the real node says it: `... failed to resolve image: x: not found`), so the one-line message ends
// with the registry's answer; the evidence keeps the full text.
func withoutImageEchoes(detail, image string) string {
	q := strconv.Quote(image)
	for _, prefix := range []string{"failed to pull and unpack image " + q + ": ", "failed to resolve reference " + q + ": ",
		"failed to resolve image: " + image + ": ", "failed to resolve image: ", "failed to pull image " + q + ": ", q + ": "} {
		for {
			i := strings.Index(strings.ToLower(detail), strings.ToLower(prefix))
			if i < 0 {
				break
			}
			detail = detail[:i] + detail[i+len(prefix):]
		}
	}
	if strings.TrimSpace(detail) == "" {
		return "pull failed"
	}
	return detail
}

// clip keeps one fact to a readable length.
func clip(s string) string {
	s = oneline.Fold(s)
	const max = 300
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}
