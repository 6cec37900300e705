package diagnose

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// events indexes the rollout's events by involved object ("Kind/name"), keeping only those seen at or after the
// rollout started: a FailedCreate from last week's release must not fail today's.
type events map[string][]corev1.Event

func indexEvents(all []corev1.Event, started time.Time) events {
	// Legacy event timestamps have whole seconds: an event 0.3s after Started may read as before it.
	cutoff := started.Truncate(time.Second)
	ix := events{}
	for _, e := range all {
		if !started.IsZero() && lastSeen(e).Before(cutoff) {
			continue
		}
		k := objectKey(e.InvolvedObject.Kind, e.InvolvedObject.Name)
		ix[k] = append(ix[k], e)
	}
	for _, list := range ix {
		sort.SliceStable(list, func(i, j int) bool { return firstSeen(list[i]).Before(firstSeen(list[j])) })
	}
	return ix
}

// about returns the events of one object whose reason is among reasons (all when none given). A non-empty uid
// drops events of an earlier object with the same name (a StatefulSet pod recreated as web-0).
func (ix events) about(kind, name string, uid types.UID, reasons ...string) []corev1.Event {
	var out []corev1.Event
	for _, e := range ix[objectKey(kind, name)] {
		if uid != "" && e.InvolvedObject.UID != "" && e.InvolvedObject.UID != uid {
			continue
		}
		if len(reasons) > 0 && !slices.Contains(reasons, e.Reason) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// firstSeen is when an event (or its series) first happened. Legacy events carry firstTimestamp; events.k8s.io
// ones (the scheduler's) carry only eventTime.
func firstSeen(e corev1.Event) time.Time {
	switch {
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// lastSeen is when an event last happened, whichever API recorded it.
func lastSeen(e corev1.Event) time.Time {
	t := firstSeen(e)
	for _, c := range []time.Time{e.LastTimestamp.Time, e.EventTime.Time} {
		if c.After(t) {
			t = c
		}
	}
	if e.Series != nil && e.Series.LastObservedTime.After(t) {
		t = e.Series.LastObservedTime.Time
	}
	return t
}

// occurrences counts an event's repetitions across both event APIs.
func occurrences(e corev1.Event) int32 {
	n := e.Count
	if e.Series != nil && e.Series.Count > n {
		n = e.Series.Count
	}
	if n < 1 {
		n = 1
	}
	return n
}

// eventLine renders an event the way a user reads it in kubectl describe: `Warning Failed: <message> (x3)`.
func eventLine(e corev1.Event) string {
	s := fmt.Sprintf("%s %s: %s", e.Type, e.Reason, strings.TrimSpace(e.Message))
	if n := occurrences(e); n > 1 {
		s += fmt.Sprintf(" (x%d)", n)
	}
	return s
}

func eventEvidence(list []corev1.Event) []Evidence {
	out := make([]Evidence, 0, len(list))
	for _, e := range list {
		out = append(out, Evidence{Object: objectKey(e.InvolvedObject.Kind, e.InvolvedObject.Name), Text: eventLine(e)})
	}
	return out
}

// earliest returns the first time any of the events happened, or fallback when there are none.
func earliest(list []corev1.Event, fallback time.Time) time.Time {
	t := fallback
	for _, e := range list {
		if f := firstSeen(e); t.IsZero() || f.Before(t) {
			t = f
		}
	}
	return t
}

func objectKey(kind, name string) string { return kind + "/" + name }
