package report

import (
	"fmt"
	"html"
	"io"
	"strings"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/oneline"
)

// Markdown writes r as a GitHub step summary (append it to $GITHUB_STEP_SUMMARY): a heading with the
// outcome, a table of workloads, the evidence of each workload that failed (or timed out) in a collapsed
// <details>, and the rollback.
func Markdown(w io.Writer, r Result) error {
	var b strings.Builder
	title := "rollguard " + r.Command
	if r.Release != "" {
		title += " " + r.Release
	}
	fmt.Fprintf(&b, "## %s: %s\n\n", mdText(title), r.Outcome.text())
	if r.Message != "" {
		b.WriteString(mdText(oneline.Fold(r.Message)) + "\n\n")
	}
	var facts []string
	if r.Namespace != "" {
		facts = append(facts, "namespace "+mdCode(r.Namespace))
	}
	if !r.AppliedAt.IsZero() {
		facts = append(facts, "applied "+r.AppliedAt.UTC().Format(TimeFormat))
	}
	if d := r.Duration(); d > 0 {
		facts = append(facts, "took "+human(d))
	}
	if r.ChangeCause != "" {
		facts = append(facts, "change cause: "+mdText(oneline.Fold(r.ChangeCause)))
	}
	if len(facts) > 0 {
		b.WriteString(strings.Join(facts, " · ") + "\n\n")
	}

	mdTable(&b, r.Workloads, r.Namespace)
	for _, wl := range r.Workloads {
		if wl.Status != diagnose.Healthy && !unfinished(wl) {
			mdDetails(&b, wl)
		}
	}

	for _, w := range r.Warnings {
		b.WriteString("> **Warning:** " + mdText(oneline.Fold(w)) + "\n\n")
	}
	if len(r.Phases) > 0 {
		b.WriteString("### Phases\n\n")
		for _, p := range r.Phases {
			b.WriteString("- " + mdText(p.Line()) + "\n")
		}
		b.WriteString("\n")
	}

	if rb := r.Rollback; rb != nil {
		b.WriteString("### Rollback\n\n")
		h := rollbackHeadline(rb) // starts with the ASCII word "rollback"
		b.WriteString(mdText(strings.ToUpper(h[:1])+h[1:]) + "\n\n")
		if len(rb.Workloads) > 0 {
			mdTable(&b, rb.Workloads, r.Namespace)
			for _, wl := range rb.Workloads {
				if wl.Status != diagnose.Healthy && !unfinished(wl) {
					mdDetails(&b, wl)
				}
			}
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing markdown summary: %w", err)
	}
	return nil
}

// mdTable lists workloads, naming the namespace of those outside the run's namespace.
func mdTable(b *strings.Builder, ws []Workload, namespace string) {
	if len(ws) == 0 {
		b.WriteString("No workloads.\n\n")
		return
	}
	b.WriteString("| Workload | Status | Reason | Detail |\n|---|---|---|---|\n")
	for _, wl := range ws {
		id := mdCode(workloadLabel(wl))
		if wl.Namespace != "" && wl.Namespace != namespace {
			id += " in " + mdCode(wl.Namespace)
		}
		reason := ""
		if wl.Status != diagnose.Healthy {
			reason = string(failureReason(wl))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", id, wl.Status, mdText(reason), mdText(oneline.Fold(detail(wl))))
	}
	b.WriteString("\n")
}

func mdDetails(b *strings.Builder, wl Workload) {
	fmt.Fprintf(b, "<details><summary>%s: %s</summary>\n\n", html.EscapeString(wl.ID()), html.EscapeString(string(failureReason(wl))))
	if wl.Message != "" {
		b.WriteString(mdText(oneline.Fold(wl.Message)) + "\n\n")
	}
	if len(wl.Evidence) > 0 {
		var ev strings.Builder
		for _, e := range wl.Evidence {
			ev.WriteString(strings.TrimRight(evidenceLine(e), "\n") + "\n")
		}
		fence := mdFence(ev.String())
		b.WriteString(fence + "text\n" + ev.String() + fence + "\n\n")
	}
	if wl.Fix != "" {
		b.WriteString("**Fix:** " + mdText(oneline.Fold(wl.Fix)) + "\n\n")
	}
	b.WriteString("</details>\n\n")
}

// mdText escapes text from the cluster (event messages, names) so it renders literally: no HTML, no table
// breaks, no emphasis or links.
func mdText(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
			continue
		case '<':
			b.WriteString("&lt;")
			continue
		case '>':
			b.WriteString("&gt;")
			continue
		case '\\', '|', '*', '_', '`', '[', ']', '~', '#':
			b.WriteByte('\\')
		case '-', '+':
			if i == 0 { // would start a list
				b.WriteByte('\\')
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}

// mdCode is s as inline code, with a backtick run longer than any inside s.
func mdCode(s string) string {
	ticks := strings.Repeat("`", longestRun(s, '`')+1)
	pad := ""
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		pad = " "
	}
	// A pipe ends a table cell even inside code on GitHub; escape it.
	return ticks + pad + strings.ReplaceAll(s, "|", `\|`) + pad + ticks
}

// mdFence is a code fence that the text cannot close.
func mdFence(s string) string {
	return strings.Repeat("`", max(3, longestRun(s, '`')+1))
}

func longestRun(s string, c rune) int {
	best, cur := 0, 0
	for _, r := range s {
		if r == c {
			cur++
			best = max(best, cur)
		} else {
			cur = 0
		}
	}
	return best
}
