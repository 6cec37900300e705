package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/rollguard/rollguard/internal/diagnose"
)

// TimeFormat is how every time appears in rollguard's machine output: RFC 3339 in UTC with milliseconds,
// e.g. "2026-11-22T02:03:04.123Z". Fixed width, so times sort as strings.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// The JSON schema is the wire structs below: their field order is the key order, and every key is always
// present (null or "" when unknown) so `jq .workloads[].reason` never depends on the outcome, except the
// per-workload details (progress, images, evidence, fix) which are omitted when empty.

type jsonResult struct {
	Release         string         `json:"release"`
	Command         string         `json:"command"`
	Outcome         Outcome        `json:"outcome"`
	ExitCode        int            `json:"exitCode"`
	Message         string         `json:"message"`
	Namespace       string         `json:"namespace"`
	ChangeCause     string         `json:"changeCause"`
	AppliedAt       jsonTime       `json:"appliedAt"`
	FinishedAt      jsonTime       `json:"finishedAt"`
	DurationSeconds float64        `json:"durationSeconds"`
	Workloads       []jsonWorkload `json:"workloads"`
	Phases          []jsonPhase    `json:"phases"`
	Warnings        []string       `json:"warnings"`
	Rollback        *jsonRollback  `json:"rollback"`
}

type jsonWorkload struct {
	Kind       string              `json:"kind"`
	Namespace  string              `json:"namespace"`
	Name       string              `json:"name"`
	Status     diagnose.Status     `json:"status"`
	Reason     diagnose.Reason     `json:"reason"`
	Message    string              `json:"message"`
	DetectedAt jsonTime            `json:"detectedAt"`
	Progress   string              `json:"progress,omitempty"`
	Images     []string            `json:"images,omitempty"`
	Evidence   []diagnose.Evidence `json:"evidence,omitempty"`
	Fix        string              `json:"fix,omitempty"`
	Phase      string              `json:"phase,omitempty"`
}

type jsonRollback struct {
	ToRelease  string         `json:"toRelease"`
	Outcome    Outcome        `json:"outcome"`
	Message    string         `json:"message"`
	StartedAt  jsonTime       `json:"startedAt"`
	FinishedAt jsonTime       `json:"finishedAt"`
	Workloads  []jsonWorkload `json:"workloads"`
}

// jsonTime is a time in TimeFormat, or null when zero (unknown, or no verdict yet).
type jsonTime time.Time

func (t jsonTime) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + tt.UTC().Format(TimeFormat) + `"`), nil
}

// JSON writes r as indented JSON (the `-o json` output) followed by a newline.
func JSON(w io.Writer, r Result) error {
	out := jsonResult{
		Release:         r.Release,
		Command:         r.Command,
		Outcome:         r.Outcome,
		ExitCode:        r.ExitCode,
		Message:         r.Message,
		Namespace:       r.Namespace,
		ChangeCause:     r.ChangeCause,
		AppliedAt:       jsonTime(r.AppliedAt),
		FinishedAt:      jsonTime(r.FinishedAt),
		DurationSeconds: math.Round(r.Duration().Seconds()*1000) / 1000,
		Workloads:       jsonWorkloads(r.Workloads),
		Phases:          jsonPhases(r.Phases),
		Warnings:        append([]string{}, r.Warnings...),
	}
	if rb := r.Rollback; rb != nil {
		out.Rollback = &jsonRollback{
			ToRelease:  rb.ToRelease,
			Outcome:    rb.Outcome,
			Message:    rb.Message,
			StartedAt:  jsonTime(rb.StartedAt),
			FinishedAt: jsonTime(rb.FinishedAt),
			Workloads:  jsonWorkloads(rb.Workloads),
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// Event text often holds quotes and <>; keep it readable rather than \u003c-escaped.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("writing JSON report: %w", err)
	}
	return nil
}

// jsonWorkloads never returns nil, so an empty list is [] rather than null.
func jsonWorkloads(ws []Workload) []jsonWorkload {
	out := make([]jsonWorkload, 0, len(ws))
	for _, w := range ws {
		out = append(out, jsonWorkload{
			Kind:       w.Kind,
			Namespace:  w.Namespace,
			Name:       w.Name,
			Status:     w.Status,
			Reason:     w.Reason,
			Message:    w.Message,
			DetectedAt: jsonTime(w.DetectedAt),
			Progress:   w.Progress,
			Images:     w.Images,
			Evidence:   w.Evidence,
			Fix:        w.Fix,
			Phase:      w.Phase,
		})
	}
	return out
}
