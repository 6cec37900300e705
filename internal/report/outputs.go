package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rollguard/rollguard/internal/oneline"
)

// Outputs writes the headline of r as KEY=VALUE lines, one per line, for a pipeline's later steps: append
// them to $GITHUB_OUTPUT, use the file as a GitLab dotenv report, or turn each line into an Azure DevOps
// output variable. Every key is always written (empty when unknown) so a later step never reads a stale
// value, and every value is folded onto one line, which all three formats require.
//
// The keys and their meaning are part of rollguard's CI interface (docs/ci.md):
//
//	ROLLGUARD_RELEASE      the release id, e.g. web.v7
//	ROLLGUARD_REVISION     its revision number, 7
//	ROLLGUARD_OUTCOME      succeeded, failed, rolled_back, rollback_failed, pending_approval, interrupted,
//	                       superseded, or error (refused or failed before a verdict: bad input, no cluster)
//	ROLLGUARD_REASON       the first failing workload's reason (ImagePullFailed, CrashLoop, ...)
//	ROLLGUARD_ROLLED_BACK  true when the cluster is back on the previous release, proven healthy
//	ROLLGUARD_EXIT_CODE    the exit code the run ends with
//	ROLLGUARD_MESSAGE      the one-line summary
//
// The values come from the cluster (event text in the message), so a consumer must never evaluate the file
// as shell code: read it line by line and split at the first '='.
func Outputs(w io.Writer, r Result) error {
	lines := [][2]string{
		{"ROLLGUARD_RELEASE", r.Release},
		{"ROLLGUARD_REVISION", revisionOf(r.Release)},
		{"ROLLGUARD_OUTCOME", string(r.Outcome)},
		{"ROLLGUARD_REASON", string(firstFailureReason(r))},
		{"ROLLGUARD_ROLLED_BACK", strconv.FormatBool(backOnPrevious(r))},
		{"ROLLGUARD_EXIT_CODE", strconv.Itoa(r.ExitCode)},
		{"ROLLGUARD_MESSAGE", r.Message},
	}
	var b strings.Builder
	for _, kv := range lines {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], oneline.Fold(kv[1]))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing outputs: %w", err)
	}
	return nil
}

// revisionOf is N of a release id APP.vN, or "" for an id without one.
func revisionOf(release string) string {
	i := strings.LastIndex(release, ".v")
	if i < 0 {
		return ""
	}
	if _, err := strconv.Atoi(release[i+2:]); err != nil {
		return ""
	}
	return release[i+2:]
}

// firstFailureReason is the reason of the first workload that did not end healthy, in report order.
func firstFailureReason(r Result) string {
	for _, w := range r.Workloads {
		if reason := failureReason(w); reason != "" {
			return string(reason)
		}
	}
	return ""
}

// backOnPrevious reports whether the cluster runs the previous release again, proven healthy: a deploy whose
// rollback succeeded, or a rollback or undo command that succeeded.
func backOnPrevious(r Result) bool {
	return r.Outcome == RolledBack || ((r.Command == "rollback" || r.Command == "undo") && r.Outcome == Succeeded)
}
