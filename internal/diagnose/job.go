package diagnose

import (
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// Jobs of a release (database migrations, one-off setup) do not roll out: they run to completion. A Job is
// healthy once its Complete condition is true and failed once its Failed condition is (backoff limit or
// active deadline reached: JobFailed). Until then its pods are judged like any new pods (image pulls,
// configuration errors, admission refusals, scheduling).

// jobRollout reads a Job's progress.
func jobRollout(j *batchv1.Job, pods []corev1.Pod) *rollout {
	r := &rollout{kind: "Job", name: j.Name, namespace: j.Namespace, job: j,
		creatorKind: "Job", creatorName: j.Name, creatorUID: j.UID}
	want := int32(1)
	if j.Spec.Completions != nil {
		want = *j.Spec.Completions
	}
	switch {
	case jobCondition(j, batchv1.JobComplete) != nil:
		r.complete = true
	case jobCondition(j, batchv1.JobFailed) != nil:
		r.waiting = "the job failed"
	default:
		r.waiting = fmt.Sprintf("%d of %d completions", j.Status.Succeeded, want)
	}
	r.newPods = pods
	r.creating = !r.complete && j.Status.Active == 0
	r.progress = fmt.Sprintf("%d/%d succeeded, %d running, %d failed", j.Status.Succeeded, want, j.Status.Active, j.Status.Failed)
	return r
}

func jobCondition(j *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if c := &j.Status.Conditions[i]; c.Type == t && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// jobFindings reports the Job controller's verdict, with what its failed pods said as evidence: JobFailed,
// or VerificationFailed for a verify Job (in.Verification), which ran against the healthy release.
func jobFindings(r *rollout, in Input, th Thresholds) []finding {
	logs := in.Logs
	if r.job == nil {
		return nil
	}
	c := jobCondition(r.job, batchv1.JobFailed)
	if c == nil {
		return nil
	}
	cond := condition{r.ref(), string(c.Type), string(c.Status), c.Reason, c.Message, c.LastTransitionTime.Time}
	evidence := []Evidence{cond.evidence()}
	exit := ""
	for i := range r.newPods {
		p := &r.newPods[i]
		for _, cs := range p.Status.ContainerStatuses {
			t := cs.State.Terminated
			if t == nil || t.ExitCode == 0 {
				continue
			}
			evidence = append(evidence, Evidence{Object: objectKey("Pod", p.Name),
				Text: fmt.Sprintf("container %s: terminated %s, exit code %d", cs.Name, t.Reason, t.ExitCode)})
			if exit == "" {
				exit = fmt.Sprintf("; container %s exited with code %d", cs.Name, t.ExitCode)
			}
			if tail := lastLines(logs[p.Name+"/"+cs.Name], th.LogLines); tail != "" {
				evidence = append(evidence, Evidence{Object: objectKey("Pod", p.Name), Text: "last log lines: " + tail})
			}
		}
	}
	reason, what := JobFailed, "job"
	if in.Verification {
		reason, what = VerificationFailed, "verify job"
	}
	return []finding{{
		reason:    reason,
		confirmed: true,
		since:     c.LastTransitionTime.Time,
		object:    r.ref(),
		message:   fmt.Sprintf("%s %s failed: %s: %s%s", what, r.name, c.Reason, c.Message, exit),
		fix:       reason.Fix(),
		evidence:  evidence,
	}}
}

// lastLines keeps the last n lines of a log, redacted like a crashed container's (tail), joined with " | "
// so the evidence stays one line: a migration or verify Job printing its connection string must not leak it.
func lastLines(log string, n int) string {
	return strings.Join(tail(log, n), " | ")
}
