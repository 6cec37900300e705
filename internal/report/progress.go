package report

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/oneline"
)

// Progress shows the workloads' state while a run is under way. On a terminal it keeps one line per
// workload at the bottom of the output and redraws them in place; elsewhere (CI logs, files) it prints a
// timestamped line for a workload only when its line changes, so a ten-minute rollout does not flood the log.
//
// It is safe for concurrent use. Output is best effort: a failed write to the progress stream is ignored,
// since it must never abort a deploy.
type Progress struct {
	mu    sync.Mutex
	out   io.Writer
	tty   bool
	now   func() time.Time
	width func() int // terminal columns, 0 when unknown

	last  map[workloadKey]shown // non-TTY: what was last printed per workload
	lines []string              // TTY: the block currently on screen, bottom-most output
	done  bool

	// The labels of the workloads last shown: a release's list stays the same through a run, and naming
	// 1,000 workloads again on every update cost more than the update itself.
	labelled []workloadKey
	labels   []string
}

type workloadKey struct{ namespace, kind, name string }

// shown is what a workload's progress line is made of: an update whose fields are the same prints nothing,
// and is found so without building the line again.
type shown struct {
	label                   string
	status                  diagnose.Status
	reason                  diagnose.Reason
	message, progress, line string
}

func keyOf(w Workload) workloadKey { return workloadKey{w.Namespace, w.Kind, w.Name} }

// NewProgress writes progress to out. tty selects in-place redrawing (see IsTerminal); now stamps CI lines.
func NewProgress(out io.Writer, tty bool, now func() time.Time) *Progress {
	p := &Progress{out: out, tty: tty, now: now, last: map[workloadKey]shown{}, width: func() int { return 0 }}
	if f, ok := out.(*os.File); ok && tty {
		// Lines longer than the terminal wrap, and the cursor-up count would then miss the extra rows.
		p.width = func() int {
			w, _, err := term.GetSize(int(f.Fd()))
			if err != nil {
				return 0
			}
			return w
		}
	}
	return p
}

// IsTerminal reports whether f is an interactive terminal that can take in-place redraws. CI systems that
// allocate a pseudo-terminal (CI=true, Azure's TF_BUILD) and TERM=dumb get plain lines instead: their logs
// keep every byte, so redraws would show up as escape-sequence noise.
func IsTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	return interactive(term.IsTerminal(int(f.Fd())), os.Getenv)
}

func interactive(isTerminal bool, getenv func(string) string) bool {
	if !isTerminal || getenv("TERM") == "dumb" {
		return false
	}
	for _, k := range []string{"CI", "TF_BUILD"} {
		switch strings.ToLower(getenv(k)) {
		case "", "0", "false", "no":
		default:
			return false
		}
	}
	return true
}

// Update shows the current state of all tracked workloads (pass the full list every time).
func (p *Progress) Update(ws []Workload) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	labels := p.labelsOf(ws)
	if p.tty {
		lines := make([]string, len(ws))
		for i, w := range ws {
			lines[i] = symbol(w) + " " + progressLine(labels[i], w)
		}
		p.redraw(nil, lines)
		return
	}
	var b strings.Builder
	stamp := p.now().UTC().Format(time.RFC3339)
	for i, w := range ws {
		key := keyOf(w)
		now := shown{label: labels[i], status: w.Status, reason: w.Reason, message: w.Message, progress: w.Progress}
		before, ok := p.last[key]
		if ok && before.label == now.label && before.status == now.status && before.reason == now.reason &&
			before.message == now.message && before.progress == now.progress {
			continue
		}
		now.line = progressLine(labels[i], w)
		p.last[key] = now
		if ok && before.line == now.line {
			continue
		}
		b.WriteString(stamp + " " + now.line + "\n")
	}
	if b.Len() > 0 {
		_, _ = io.WriteString(p.out, b.String())
	}
}

// Event prints a one-off line ("applied 4 objects", "rolling back to r-41"): timestamped in CI, above the
// workload block on a terminal.
func (p *Progress) Event(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	msg = oneline.Fold(msg)
	if p.tty {
		p.redraw([]string{msg}, p.lines)
		return
	}
	_, _ = io.WriteString(p.out, p.now().UTC().Format(time.RFC3339)+" "+msg+"\n")
}

// Done ends live output: the last block stays on screen and later writes to the stream start below it.
// Update and Event do nothing afterwards.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	p.lines = nil
}

// redraw replaces the block on screen with the permanent lines above (scrolled out of the block) followed by
// the new block. The cursor always rests at the start of the line after the block.
func (p *Progress) redraw(above, block []string) {
	var b strings.Builder
	old := len(p.lines)
	if old > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", old) // cursor up to the block's first line
	}
	width := p.width()
	written := 0
	for _, l := range append(append([]string(nil), above...), block...) {
		b.WriteString("\x1b[2K" + truncate(l, width) + "\n") // clear the line, then draw it
		written++
	}
	if extra := old - written; extra > 0 {
		// The block shrank: blank the rows left over and return to just below the new block.
		b.WriteString(strings.Repeat("\x1b[2K\n", extra))
		fmt.Fprintf(&b, "\x1b[%dA", extra)
	}
	p.lines = block
	if b.Len() > 0 {
		_, _ = io.WriteString(p.out, b.String())
	}
}

// progressLine is e.g. "web: 2/3 updated, 1 ready" or "web: failed: ImagePullFailed — Back-off pulling image".
func progressLine(label string, w Workload) string {
	switch {
	case w.Status == diagnose.Healthy:
		if w.Progress != "" {
			return label + ": healthy (" + w.Progress + ")"
		}
		return label + ": healthy"
	case w.Status == diagnose.Failed || w.Reason != "":
		s := label + ": " + string(w.Status) + ": " + string(failureReason(w))
		if w.Message != "" {
			s += " — " + oneline.Fold(w.Message)
		}
		return s
	case w.Progress != "":
		return label + ": " + w.Progress
	default:
		return label + ": " + string(w.Status)
	}
}

// labelsOf is progressLabels(ws), computed again only when the list of workloads changed.
func (p *Progress) labelsOf(ws []Workload) []string {
	same := len(ws) == len(p.labelled)
	for i := 0; same && i < len(ws); i++ {
		same = keyOf(ws[i]) == p.labelled[i]
	}
	if !same {
		p.labelled = make([]workloadKey, len(ws))
		for i, w := range ws {
			p.labelled[i] = keyOf(w)
		}
		p.labels = progressLabels(ws)
	}
	return p.labels
}

// progressLabels names each workload as briefly as is unambiguous within ws: "web", else "Deployment/web",
// else "prod/Deployment/web".
func progressLabels(ws []Workload) []string {
	count := func(f func(Workload) string) map[string]int {
		m := map[string]int{}
		for _, w := range ws {
			m[f(w)]++
		}
		return m
	}
	byName := count(func(w Workload) string { return w.Name })
	byID := count(Workload.ID)
	labels := make([]string, len(ws))
	for i, w := range ws {
		switch {
		case byName[w.Name] == 1:
			labels[i] = w.Name
		case byID[w.ID()] == 1:
			labels[i] = w.ID()
		default:
			labels[i] = w.Namespace + "/" + w.ID()
		}
	}
	return labels
}

// truncate cuts s to fit in width columns (counting runes; 0 means no limit), marking the cut with "…".
func truncate(s string, width int) string {
	if width <= 1 {
		return s
	}
	r := []rune(s)
	// Leave the last column free: writing into it makes some terminals wrap early.
	if len(r) < width {
		return s
	}
	return string(r[:width-2]) + "…"
}
