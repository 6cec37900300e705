package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/oneline"
)

// Human writes the terminal summary: one line per workload (failures followed by their evidence and fix,
// indented), the rollback if there was one, and a final line with the outcome.
func Human(w io.Writer, r Result) error {
	var b strings.Builder
	for _, wl := range r.Workloads {
		humanWorkload(&b, "", wl, r.Namespace, r.AppliedAt, "apply")
	}
	for _, p := range r.Phases {
		b.WriteString(p.Line() + "\n")
	}
	if rb := r.Rollback; rb != nil {
		b.WriteString(rollbackHeadline(rb) + "\n")
		for _, wl := range rb.Workloads {
			humanWorkload(&b, "  ", wl, r.Namespace, rb.StartedAt, "rollback")
		}
	}
	for _, w := range r.Warnings {
		b.WriteString("Warning: " + oneline.Fold(w) + "\n")
	}
	// The release ID is what approve, rollback and history take: always name it.
	if r.Release != "" {
		b.WriteString("Release: " + r.Release)
		if r.Namespace != "" {
			b.WriteString(" in namespace " + r.Namespace)
		}
		b.WriteString("\n")
	}
	b.WriteString("Result: " + r.Outcome.text())
	if d := r.Duration(); d > 0 {
		b.WriteString(" (" + human(d) + ")")
	}
	if r.Message != "" {
		b.WriteString(" — " + oneline.Fold(r.Message))
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing summary: %w", err)
	}
	return nil
}

// humanWorkload writes one workload's line. Workloads outside namespace are marked; verdict times are
// given relative to start, which is when `since` ("apply", "rollback") happened.
func humanWorkload(b *strings.Builder, indent string, wl Workload, namespace string, start time.Time, since string) {
	b.WriteString(indent + symbol(wl) + " " + workloadLabel(wl))
	if wl.Namespace != "" && wl.Namespace != namespace {
		b.WriteString(" in " + wl.Namespace)
	}
	b.WriteString(" " + string(wl.Status))
	var notes []string
	if wl.Status == diagnose.Healthy || unfinished(wl) {
		if wl.Progress != "" {
			notes = append(notes, wl.Progress)
		}
	} else {
		b.WriteString(": " + string(failureReason(wl)))
		if wl.Message != "" {
			b.WriteString(" — " + oneline.Fold(wl.Message))
		}
	}
	if d := between(start, wl.DetectedAt); d > 0 {
		verb := "detected"
		if wl.Status == diagnose.Healthy {
			verb = "ready"
		}
		notes = append(notes, verb+" "+human(d)+" after "+since)
	}
	if len(notes) > 0 {
		b.WriteString(" (" + strings.Join(notes, "; ") + ")")
	}
	b.WriteString("\n")
	sub := indent + "    "
	for _, e := range wl.Evidence {
		// Log tails span lines; keep every line under the workload.
		b.WriteString(sub + strings.ReplaceAll(strings.TrimRight(evidenceLine(e), "\n"), "\n", "\n"+sub+"  ") + "\n")
	}
	if wl.Fix != "" {
		b.WriteString(sub + "fix: " + oneline.Fold(wl.Fix) + "\n")
	}
}

// symbol marks a workload's state: ✓ healthy, ✗ failed or timed out, … no verdict yet.
func symbol(w Workload) string {
	switch {
	case w.Status == diagnose.Healthy:
		return "✓"
	case unfinished(w):
		return "…"
	default:
		return "✗"
	}
}
