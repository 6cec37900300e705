package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rollguard/rollguard/internal/history"
	"github.com/rollguard/rollguard/internal/release"
)

// WriteJSON writes v as indented JSON: `-o json` of the commands whose result is not a release's Result
// (history, envs, images). what names it in the error.
func WriteJSON(w io.Writer, v any, what string) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing %s: %w", what, err)
	}
	return nil
}

// HistoryText writes a history as a table (`rollguard history`).
func HistoryText(w io.Writer, r *history.Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if r.App != "" {
		fmt.Fprintln(tw, "RELEASE\tOUTCOME\tIMAGES\tDEPLOYED BY\tTIME\tCHANGE CAUSE")
	} else {
		fmt.Fprintln(tw, "REVISION\tRELEASE\tOUTCOME\tIMAGES\tDEPLOYED BY\tTIME\tCHANGE CAUSE")
	}
	for _, e := range r.Entries {
		cols := []string{dash(e.Release), HistoryOutcome(e), dash(strings.Join(e.Images, ",")), dash(e.DeployedBy), timeText(e.Time), dash(e.ChangeCause)}
		if r.App == "" {
			rev := "-"
			if e.Revision > 0 {
				rev = strconv.FormatInt(e.Revision, 10)
			}
			if e.Current {
				rev += " (current)"
			}
			cols = append([]string{rev}, cols...)
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the history: %w", err)
	}
	return nil
}

// HistoryOutcome is how an entry ended, in words: "rolled back: ImagePullFailed → web.v1", "rollback of
// web.v2", "same as revision 2", "succeeded, rollback target".
func HistoryOutcome(e history.Entry) string {
	var parts []string
	switch {
	case e.RollbackOf != "" && e.Release == "":
		parts = append(parts, "rollback of "+e.RollbackOf)
	case e.RollbackOf != "":
		parts = append(parts, e.Outcome.Text()+" (undo of "+e.RollbackOf+")")
	case e.Outcome != "":
		s := e.Outcome.Text()
		if e.ObservedBy != "" && e.Outcome == release.RolledBack {
			s += " by guard"
		}
		if e.Reason != "" && e.Outcome != release.Succeeded {
			s += ": " + e.Reason
		}
		parts = append(parts, s)
	case len(e.SameAs) > 0:
		parts = append(parts, "same as "+joinRevisions(e.SameAs))
	}
	if e.RolledBackTo != "" && e.RollbackOf == "" {
		parts[len(parts)-1] += " → " + e.RolledBackTo
	}
	if len(e.RollbackTarget) > 0 {
		parts = append(parts, "rollback target")
	}
	if e.Irreversible != "" {
		parts = append(parts, "irreversible: "+e.Irreversible)
	}
	for _, p := range e.Phases {
		parts = append(parts, p.Name+" "+strings.ReplaceAll(p.Outcome, "_", " "))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func joinRevisions(ns []int64) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = "revision " + strconv.FormatInt(n, 10)
	}
	return strings.Join(s, ", ")
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
