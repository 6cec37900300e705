package diagnose

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ConfigError: the kubelet cannot create a container (CreateContainerConfigError, CreateContainerError).
// Most causes are in the pod template and fail at once: the same template fails the same way on every
// retry. A ConfigMap, Secret or key the template needs but the namespace lacks may be on its way: an
// operator (External Secrets, Sealed Secrets) or a sibling step of the pipeline creates it moments after the
// apply, and the kubelet creates the container at its next retry. So a missing one that is still missing
// fails after th.ConfigGrace; one that exists now, or that the caller could not look up (Input.Config), is
// waited for th.QuotaGrace, the kubelet's retry (every 10 to 15 s) included.

var (
	missingRef = regexp.MustCompile(`(?i)\b(configmap|secret)s? "([^"]+)" not found`)
	missingKey = regexp.MustCompile(`couldn't find key (\S+) in (ConfigMap|Secret) ([^/\s]+)/(\S+)`)
)

// ConfigRef names a ConfigMap or Secret, or one key of it, that a container cannot be created without.
type ConfigRef struct {
	Kind string // ConfigMap or Secret
	Name string
	Key  string // empty: the whole object is missing
}

// String is the ref's key in Input.Config: "ConfigMap/app-config", "Secret/db#password".
func (r ConfigRef) String() string {
	if r.Key == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Name + "#" + r.Key
}

// MissingConfig lists what the kubelet reports missing for the pods' containers, for the caller to look up
// (Input.Config). It reads every pod of the workload rather than finding the new revision's (newRollout, the
// costliest step of a judgement, which Diagnose makes anyway): only the new pods' answers are used, and an
// old pod missing one too costs at most a lookup.
func MissingConfig(in Input) []ConfigRef {
	var out []ConfigRef
	seen := map[ConfigRef]bool{}
	for i := range in.Pods {
		for _, cs := range containerStatuses(&in.Pods[i]) {
			if w := cs.State.Waiting; w != nil {
				if ref, ok := missingConfig(w.Message); ok && !seen[ref] {
					seen[ref] = true
					out = append(out, ref)
				}
			}
		}
	}
	return out
}

// missingConfig reads the kubelet's message: `couldn't find key K in ConfigMap NS/NAME`,
// `configmap "NAME" not found`, `secret "NAME" not found`.
func missingConfig(msg string) (ConfigRef, bool) {
	if m := missingKey.FindStringSubmatch(msg); m != nil {
		return ConfigRef{Kind: m[2], Name: m[4], Key: m[1]}, true
	}
	if m := missingRef.FindStringSubmatch(msg); m != nil {
		kind := "ConfigMap"
		if strings.EqualFold(m[1], "secret") {
			kind = "Secret"
		}
		return ConfigRef{Kind: kind, Name: m[2]}, true
	}
	return ConfigRef{}, false
}

func (c containerCheck) configError() finding {
	w := c.status.State.Waiting
	// The grace counts from the kubelet's first failure to create the container ("Error: ..."; a failed
	// pull is "Failed" too), not from the pod's creation: a slow pull before it must not eat the grace.
	failed := eventsSaying(c.events, "Failed", "Error: ")
	since := c.pod.CreationTimestamp.Time // no event (yet, or dropped by the kubelet's rate limit)
	if len(failed) > 0 {
		since = earliest(failed, time.Time{})
	}
	what, fix := clip(w.Message), fmt.Sprintf("fix container %s's spec: %s", c.status.Name, clip(w.Message))
	if w.Message == "" {
		what = w.Reason
	}
	grace := time.Duration(0)
	if ref, ok := missingConfig(w.Message); ok {
		if ref.Key != "" {
			what = fmt.Sprintf("key %q missing from %s %q", ref.Key, ref.Kind, ref.Name)
			fix = fmt.Sprintf("add key %q to %s %q in namespace %s, or fix the key reference in the pod template", ref.Key, ref.Kind, ref.Name, c.pod.Namespace)
		} else {
			what = fmt.Sprintf("%s %q not found", ref.Kind, ref.Name)
			fix = fmt.Sprintf("create %s %q in namespace %s before deploying, or fix the reference (or mark it optional) in the pod template",
				ref.Kind, ref.Name, c.pod.Namespace)
		}
		present, known := c.config[ref.String()]
		switch {
		case known && !present:
			grace = c.th.ConfigGrace
		case known:
			grace = c.th.QuotaGrace
			what += " (it exists now: the kubelet creates the container at its next retry)"
		default:
			grace = c.th.QuotaGrace
		}
	}
	anchor := anchorKey("config", c.pod, c.status.Name, since)
	f := finding{
		reason:   ConfigError,
		since:    since,
		object:   c.object(),
		message:  fmt.Sprintf("pod %s: container %s cannot be created: %s", c.pod.Name, c.status.Name, what),
		fix:      fix,
		evidence: append([]Evidence{c.stateEvidence()}, eventEvidence(failed)...),
		anchor:   anchor,
	}
	return f.timed(c.now, waitFrom(since, anchor, c.seen), grace)
}
