package guard

import (
	"fmt"
	"strconv"
	"time"

	"github.com/rollguard/rollguard/internal/diagnose"
)

// Labels and annotations the guard reads (and the one it writes, ReleaseAnnotation).
const (
	// NamespaceLabel=enabled on a namespace guards every Deployment, StatefulSet and DaemonSet in it.
	NamespaceLabel = "rollguard.dev/guard"
	// GuardAnnotation on a workload: "enabled" guards it wherever it is, "disabled" opts it out.
	GuardAnnotation = "rollguard.dev/guard"
	// OnFailureAnnotation is rollback (default), hold or none.
	OnFailureAnnotation = "rollguard.dev/on-failure"
	// AppAnnotation names the rollguard app a workload belongs to (its records and its deploy lock); the
	// default is the workload's name, as `rollguard deploy` and `rollguard undo` default it.
	AppAnnotation = "rollguard.dev/app"
	// TimeoutAnnotation bounds how long a rollout may take before it fails with Timeout (default 10m).
	TimeoutAnnotation = "rollguard.dev/timeout"
	// ReleaseAnnotation is written by the guard: the record of the last rollout it followed, so a restarted
	// guard finds an unfinished one without listing every record in the cluster.
	ReleaseAnnotation = "rollguard.dev/guard-release"

	// Threshold annotations, as the deploy flags of the same names.
	ImagePullGraceAnnotation     = "rollguard.dev/image-pull-grace"
	CrashLoopRestartsAnnotation  = "rollguard.dev/crash-loop-restarts"
	ReadinessSlackAnnotation     = "rollguard.dev/readiness-slack"
	UnschedulableGraceAnnotation = "rollguard.dev/unschedulable-grace"
	QuotaGraceAnnotation         = "rollguard.dev/quota-grace"
)

// On-failure policies.
const (
	OnFailureRollback = "rollback"
	OnFailureHold     = "hold"
	OnFailureNone     = "none"
)

// DefaultTimeout is how long a guarded rollout may take when the workload does not say.
const DefaultTimeout = 10 * time.Minute

// Guarded reports whether a workload is guarded: its own annotation decides when present, else its
// namespace's label.
func Guarded(namespaceLabels, annotations map[string]string) bool {
	switch annotations[GuardAnnotation] {
	case "enabled":
		return true
	case "disabled":
		return false
	}
	return namespaceLabels[NamespaceLabel] == "enabled"
}

// Policy is what the guard does about one workload's rollouts.
type Policy struct {
	App        string
	OnFailure  string
	Timeout    time.Duration
	Thresholds diagnose.Thresholds
}

// PolicyFor reads a workload's policy annotations over the defaults. A malformed annotation is an error
// naming it: the guard then leaves the workload alone rather than guess (and says so in an Event).
func PolicyFor(name string, annotations map[string]string) (Policy, error) {
	p := Policy{App: name, OnFailure: OnFailureRollback, Timeout: DefaultTimeout, Thresholds: diagnose.DefaultThresholds()}
	if app := annotations[AppAnnotation]; app != "" {
		p.App = app
	}
	switch v := annotations[OnFailureAnnotation]; v {
	case "":
	case OnFailureRollback, OnFailureHold, OnFailureNone:
		p.OnFailure = v
	default:
		return p, fmt.Errorf("annotation %s=%q: use rollback, hold or none", OnFailureAnnotation, v)
	}
	durations := []struct {
		key string
		to  *time.Duration
	}{
		{TimeoutAnnotation, &p.Timeout},
		{ImagePullGraceAnnotation, &p.Thresholds.ImagePullGrace},
		{ReadinessSlackAnnotation, &p.Thresholds.ReadinessSlack},
		{UnschedulableGraceAnnotation, &p.Thresholds.UnschedulableGrace},
		{QuotaGraceAnnotation, &p.Thresholds.QuotaGrace},
	}
	for _, d := range durations {
		v, ok := annotations[d.key]
		if !ok {
			continue
		}
		dur, err := time.ParseDuration(v)
		if err != nil || dur < 0 || (d.key == TimeoutAnnotation && dur == 0) {
			return p, fmt.Errorf("annotation %s=%q: use a positive duration such as 30s or 5m", d.key, v)
		}
		*d.to = dur
	}
	if v, ok := annotations[CrashLoopRestartsAnnotation]; ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 1 {
			return p, fmt.Errorf("annotation %s=%q: use a whole number of restarts, at least 1", CrashLoopRestartsAnnotation, v)
		}
		p.Thresholds.CrashLoopRestarts = int32(n)
	}
	return p, nil
}
