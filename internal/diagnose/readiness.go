package diagnose

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The readiness rule (ReadinessFailed): a running container that never becomes ready, its wait set by its
// probes and the app's start-up history (startup.go).

// readiness: a running container that is not ready fails once it has been unready longer than the app's
// history or its probes allow (readinessWait; the history only for a first start). Without a readiness
// probe the kubelet marks a running container ready by itself, so no readiness failure is possible.
func (c containerCheck) readiness(logs map[string]string) (finding, bool) {
	cs := c.status
	if cs.State.Running == nil || cs.Ready || c.spec == nil || c.spec.ReadinessProbe == nil {
		return finding{}, false
	}
	if c.isPlainInit() {
		return finding{}, false
	}
	// A restarted container is timed from its own start (the new instance's probes start over).
	unready, rerun := cs.State.Running.StartedAt.Time, ""
	// A loaded kubelet may write the pod's status seconds after the events of a restart: more "Started"
	// events than starts in the status mean it restarted already.
	restarts := cs.RestartCount
	for _, e := range eventsWithReason(c.events, "Started") {
		restarts = max(restarts, occurrences(e)-1)
	}
	if restarts > 0 {
		rerun = fmt.Sprintf("restarted %d time", restarts)
		if restarts != 1 {
			rerun += "s"
		}
	}
	started := unready
	for _, pc := range c.pod.Status.Conditions {
		// A container that was ready and lost it is unready since that transition, not since it started.
		// Only a transition later than its probe allows evidences that (to lose readiness it first had to
		// pass, then fail failureThreshold times); an earlier one is the kubelet's first status write.
		if pc.Type == corev1.ContainersReady && pc.Status == corev1.ConditionFalse && pc.LastTransitionTime.After(unready) {
			unready = pc.LastTransitionTime.Time
			if unready.After(started.Add(probeBudget(c.spec.ReadinessProbe))) {
				rerun = "was ready before"
			}
		}
	}
	wait, allows := readinessWait(c.spec, c.startup, rerun, c.th)
	probes := eventsSaying(c.events, "Unhealthy", "Readiness probe", "Startup probe")
	since := earliest(probes, unready)
	age := c.now.Sub(unready).Round(time.Second)
	msg := fmt.Sprintf("pod %s: container %s running for %s but not ready (%s)", c.pod.Name, cs.Name, age, allows)
	if len(probes) > 0 {
		msg += ": " + clip(probes[len(probes)-1].Message)
	}
	ev := append([]Evidence{c.stateEvidence()}, eventEvidence(probes)...)
	// The output tells a slow or stuck app from one that already died: a container runtime that is slow to
	// handle an exit (containerd waits for the shim's cleanup) keeps a crashed container "running" for
	// seconds, and then its own last words are the only trace of the crash.
	check := "check the app serves it"
	if lines := tail(logs[OutputKey(c.pod.Name, cs.Name)], c.th.LogLines); len(lines) > 0 {
		msg += fmt.Sprintf("; last output line: %q", lines[len(lines)-1])
		check = "check the app serves it (its last output lines are in the evidence)"
		for _, l := range lines {
			ev = append(ev, Evidence{Object: c.object(), Text: fmt.Sprintf("container %s output: %s", cs.Name, l)})
		}
	}
	anchor := anchorKey("unready", c.pod, cs.Name, unready)
	f := finding{
		reason:  ReadinessFailed,
		since:   since,
		object:  c.object(),
		message: msg,
		fix: fmt.Sprintf("the readiness probe (%s) of container %s keeps failing: %s, or raise initialDelaySeconds/failureThreshold if it needs longer to start",
			describeProbe(c.spec.ReadinessProbe), cs.Name, check),
		evidence: ev,
		anchor:   anchor,
	}
	return f.timed(c.now, waitFrom(unready, anchor, c.seen), wait), true
}

// OutputKey is the Input.Logs key of what a running container has written so far (its current run, where
// the plain "pod/container" key holds its previous, crashed one).
func OutputKey(pod, container string) string {
	return pod + "/" + container + " (running)"
}

// probeBudget is how long a probe may fail before it counts, with the API defaults for unset fields
// (initialDelaySeconds 0, periodSeconds 10, failureThreshold 3).
func probeBudget(p *corev1.Probe) time.Duration {
	if p == nil {
		return 0
	}
	period, failures := p.PeriodSeconds, p.FailureThreshold
	if period == 0 {
		period = 10
	}
	if failures == 0 {
		failures = 3
	}
	return time.Duration(p.InitialDelaySeconds+period*failures) * time.Second
}

func describeProbe(p *corev1.Probe) string {
	switch {
	case p.HTTPGet != nil:
		return fmt.Sprintf("HTTP GET :%s%s", p.HTTPGet.Port.String(), p.HTTPGet.Path)
	case p.TCPSocket != nil:
		return fmt.Sprintf("TCP :%s", p.TCPSocket.Port.String())
	case p.GRPC != nil:
		return fmt.Sprintf("gRPC :%d", p.GRPC.Port)
	case p.Exec != nil:
		return "exec " + strings.Join(p.Exec.Command, " ")
	}
	return "probe"
}
