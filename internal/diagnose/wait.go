package diagnose

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// When a wait starts and ends. A rule that tolerates a signal for a while (a probe budget, a grace window)
// counts from a time the API recorded; the finding then carries when that wait ends (finding.due, so a
// tracker can judge again exactly then) and, where the API kept whole seconds, the key of the state it
// counts from (finding.anchor), for which the caller may know better (Input.Seen).

// cutOff is how much later than recorded a time may really have been: the API keeps whole seconds, so a
// container recorded as started at 10:00:05 may have started at 10:00:05.9. A wait is counted from the
// latest it can have begun, so the rounding never fails a healthy container early (it eats most of a
// one-second slack otherwise).
func cutOff(t time.Time) time.Duration {
	if t.Nanosecond() == 0 {
		return time.Second
	}
	return 0
}

// waitFrom is when a wait counted from the recorded time t starts: the latest t can have been (cutOff),
// or earlier when the caller saw the state under key at a time before that (Input.Seen): the state existed
// when it was seen, so it began no later. A sighting before t itself (the caller's clock behind the
// cluster's) tells nothing and is ignored.
func waitFrom(t time.Time, key string, seen map[string]time.Time) time.Time {
	start := t.Add(cutOff(t))
	if s, ok := seen[key]; ok && s.Before(start) && !s.Before(t) {
		start = s
	}
	return start
}

// timed makes f a finding confirmed once wait has passed since start, due then; with no wait, at once.
func (f finding) timed(now, start time.Time, wait time.Duration) finding {
	if wait <= 0 {
		f.confirmed = true
		return f
	}
	f.due = start.Add(wait)
	f.confirmed = !now.Before(f.due)
	return f
}

// Sighted adds to seen (Input.Seen; nil allocates it) the verdict's anchors not seen before, at: a time
// by which the objects judged were in the caller's hands, so their states began no later.
func (v Verdict) Sighted(seen map[string]time.Time, at time.Time) map[string]time.Time {
	for _, a := range v.Anchors {
		if _, ok := seen[a]; !ok {
			if seen == nil {
				seen = map[string]time.Time{}
			}
			seen[a] = at
		}
	}
	return seen
}

// anchorKey names a container's state that began at t, for Input.Seen.
func anchorKey(what string, pod *corev1.Pod, container string, t time.Time) string {
	return what + " " + string(pod.UID) + "/" + container + " " + t.UTC().Format(time.RFC3339Nano)
}
