package report

import (
	"strings"
	"time"

	"github.com/rollguard/rollguard/internal/oneline"
)

// Phase is one step of a release beyond applying and tracking its workloads: the pre-deploy Jobs that run
// before any workload changes, the verify Jobs that run once every workload is healthy, and the bake window
// that keeps watching after that. The workloads of a Job phase are in Result.Workloads with Workload.Phase
// set; a Phase says when the step ran and how it ended.
type Phase struct {
	// Name is "pre-deploy", "verify" or "bake".
	Name string
	// Outcome is Succeeded or Failed; Interrupted when the run stopped in it.
	Outcome    Outcome
	StartedAt  time.Time
	FinishedAt time.Time
	// Message says what ran, e.g. "2 Jobs completed: Job/migrate, Job/seed" or "stayed healthy for 2m0s".
	Message string
}

type jsonPhase struct {
	Name            string   `json:"name"`
	Outcome         Outcome  `json:"outcome"`
	Message         string   `json:"message"`
	StartedAt       jsonTime `json:"startedAt"`
	FinishedAt      jsonTime `json:"finishedAt"`
	DurationSeconds float64  `json:"durationSeconds"`
}

func jsonPhases(ps []Phase) []jsonPhase {
	out := make([]jsonPhase, 0, len(ps))
	for _, p := range ps {
		out = append(out, jsonPhase{Name: p.Name, Outcome: p.Outcome, Message: p.Message, StartedAt: jsonTime(p.StartedAt),
			FinishedAt: jsonTime(p.FinishedAt), DurationSeconds: float64(between(p.StartedAt, p.FinishedAt).Milliseconds()) / 1000})
	}
	return out
}

// Line is e.g. "phase pre-deploy: succeeded in 2.1s — 1 Job completed: Job/migrate".
func (p Phase) Line() string {
	s := "phase " + p.Name + ": " + p.Outcome.text()
	if d := between(p.StartedAt, p.FinishedAt); d > 0 {
		s += " in " + human(d)
	}
	if p.Message != "" {
		s += " — " + oneline.Fold(p.Message)
	}
	return s
}

// phaseCase is a phase as a JUnit test case ("phase/bake"); a failed phase fails it, with the message.
func phaseCase(namespace string, p Phase) junitCase {
	c := junitCase{Classname: namespace, Name: "phase/" + p.Name, Time: seconds(between(p.StartedAt, p.FinishedAt))}
	if p.Outcome != Succeeded {
		c.Failure = &junitFailure{Message: p.Outcome.text() + ": " + oneline.Fold(p.Message), Type: string(p.Outcome), Body: xmlChars(p.Message)}
	}
	return c
}

// workloadLabel is the workload's ID, prefixed with its phase for a phase's Job ("verify: Job/smoke").
func workloadLabel(w Workload) string {
	if w.Phase == "" {
		return w.ID()
	}
	return strings.TrimSpace(w.Phase + ": " + w.ID())
}
