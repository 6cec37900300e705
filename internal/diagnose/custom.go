package diagnose

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/rollguard/rollguard/internal/oneline"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Custom resources (cert-manager Certificates, ExternalSecrets, Argo Rollouts, Gateway API objects, ...)
// are followed the kstatus way (sigs.k8s.io/cli-utils): a controller that has not observed the current
// generation is still working; Stalled, or a failure-type condition, is a failure; Ready or Available
// True is healthy; Reconciling, or Ready/Available not True, is progressing; an object whose controller
// writes no conditions at all is healthy once it exists (after noStatusWait when it has no status yet).
// CustomResourceFailed is decided here.

// failingReason matches condition reasons that say the controller gave up or hit an error, as opposed to
// "still working" ones (Pending, InProgress, Issuing).
var failingReason = regexp.MustCompile(`(?i)fail|error|invalid|denied|forbidden|notfound|degraded|aborted|deadlineexceeded`)

type crCondition struct {
	typ, status, reason, message string
	observedGeneration           int64
	since                        time.Time
}

func customVerdict(u *unstructured.Unstructured, in Input, th Thresholds) Verdict {
	ref := objectKey(u.GetKind(), u.GetName())
	v := Verdict{Workload: ref, Status: Progressing}
	gen := u.GetGeneration()
	if observed, found, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration"); found && observed < gen {
		v.Message = fmt.Sprintf("waiting for the controller of %s to observe generation %d (it has seen %d)", ref, gen, observed)
		v.Progress = "not observed yet"
		return timedOut(v, in)
	}
	conds := crConditions(u)
	byType := map[string]crCondition{}
	for _, c := range conds {
		byType[c.typ] = c
	}
	fail := func(c crCondition, why string) Verdict {
		v.Status, v.Reason, v.Since = Failed, CustomResourceFailed, c.since
		v.Message = fmt.Sprintf("%s %s: %s=%s %s: %s", u.GetKind(), u.GetName(), c.typ, c.status, c.reason, clip(c.message))
		if why != "" {
			v.Message += " (" + why + ")"
		}
		v.Evidence = []Evidence{{Object: ref, Text: fmt.Sprintf("condition %s=%s %s: %s", c.typ, c.status, c.reason, clip(c.message))}}
		v.Fix = fmt.Sprintf("%s: see `kubectl describe %s %s` and the logs of its controller", CustomResourceFailed.Fix(), strings.ToLower(u.GetKind()), u.GetName())
		v.Progress = c.typ + "=" + c.status
		v.Message = oneline.Fold(v.Message)
		return v
	}
	for _, typ := range []string{"Stalled", "Failed", "Degraded"} {
		if c, ok := byType[typ]; ok && c.status == "True" {
			return fail(c, "")
		}
	}
	// Argo Rollouts and others report an abandoned rollout as Progressing=False with a failing reason.
	if c, ok := byType["Progressing"]; ok && c.status == "False" && failingReason.MatchString(c.reason) {
		return fail(c, "")
	}
	if c, ok := byType["Reconciling"]; ok && c.status == "True" {
		v.Message, v.Progress = fmt.Sprintf("%s is reconciling: %s %s", ref, c.reason, clip(c.message)), "Reconciling"
		return timedOut(v, in)
	}
	for _, typ := range []string{"Ready", "Available"} {
		c, ok := byType[typ]
		if !ok {
			continue
		}
		switch {
		case c.status == "True" && (c.observedGeneration == 0 || c.observedGeneration >= gen):
			v.Status, v.Message, v.Progress = Healthy, fmt.Sprintf("%s is %s", ref, typ), typ
			return v
		case c.status == "False" && failingReason.MatchString(c.reason):
			// A controller that says it failed may still retry (an ExternalSecret's provider was down):
			// it fails once it has said so for th.ConditionGrace since this rollout began.
			since := c.since
			if since.Before(in.Started) {
				since = in.Started
			}
			if in.Now.Sub(since) >= th.ConditionGrace {
				return fail(c, fmt.Sprintf("for %s", in.Now.Sub(since).Round(time.Second)))
			}
		}
		v.Message = oneline.Fold(fmt.Sprintf("%s is not %s yet: %s %s", ref, typ, c.reason, clip(c.message)))
		v.Progress = typ + "=" + c.status
		return timedOut(v, in)
	}
	if _, hasStatus := u.Object["status"]; !hasStatus && in.Now.Sub(in.Started) < noStatusWait {
		v.Message, v.Progress = fmt.Sprintf("waiting for the controller of %s to write its status", ref), "no status yet"
		return v
	}
	v.Status, v.Message, v.Progress = Healthy, ref+" exists (its controller reports no readiness)", "current"
	return v
}

// noStatusWait is how long after the apply a custom resource without any status is given for its controller
// to write one; after that it counts as a resource whose controller reports nothing (kstatus: Current).
const noStatusWait = 5 * time.Second

// timedOut turns a progressing verdict into Timeout once the deadline has passed.
func timedOut(v Verdict, in Input) Verdict {
	if in.Deadline.IsZero() || in.Now.Before(in.Deadline) {
		return v
	}
	v.Status, v.Reason, v.Since, v.Fix = Failed, Timeout, in.Deadline, Timeout.Fix()
	v.Message = "rollout did not complete before the deadline: " + v.Message
	return v
}

func crConditions(u *unstructured.Unstructured) []crCondition {
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	var out []crCondition
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		c := crCondition{}
		c.typ, _ = m["type"].(string)
		c.status, _ = m["status"].(string)
		c.reason, _ = m["reason"].(string)
		c.message, _ = m["message"].(string)
		switch g := m["observedGeneration"].(type) {
		case int64:
			c.observedGeneration = g
		case float64:
			c.observedGeneration = int64(g)
		}
		if s, ok := m["lastTransitionTime"].(string); ok {
			c.since, _ = time.Parse(time.RFC3339, s)
		}
		out = append(out, c)
	}
	return out
}
