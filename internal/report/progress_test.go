package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/internal/diagnose"
)

// clock is a fake now() for the timestamps of CI lines, advanced by the test.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func dep(name string, s diagnose.Status, progress string) Workload {
	return Workload{Kind: "Deployment", Namespace: "prod", Name: name, Status: s, Progress: progress}
}

func TestProgressPlainPrintsOnlyChanges(t *testing.T) {
	var out bytes.Buffer
	c := &clock{t: time.Date(2026, 11, 22, 2, 3, 4, 500_000_000, time.UTC)}
	p := NewProgress(&out, false, c.now)

	steps := []struct {
		ws   []Workload
		want string
	}{
		{
			[]Workload{dep("web", diagnose.Progressing, "0/3 updated, 0 ready"), dep("api", diagnose.Progressing, "0/2 updated, 0 ready")},
			"2026-11-22T02:03:04Z web: 0/3 updated, 0 ready\n2026-11-22T02:03:04Z api: 0/2 updated, 0 ready\n",
		},
		{ // nothing changed: nothing printed
			[]Workload{dep("web", diagnose.Progressing, "0/3 updated, 0 ready"), dep("api", diagnose.Progressing, "0/2 updated, 0 ready")},
			"",
		},
		{
			[]Workload{dep("web", diagnose.Progressing, "2/3 updated, 1 ready"), dep("api", diagnose.Progressing, "0/2 updated, 0 ready")},
			"2026-11-22T02:03:06Z web: 2/3 updated, 1 ready\n",
		},
		{
			[]Workload{dep("web", diagnose.Progressing, "2/3 updated, 1 ready"), dep("api", diagnose.Healthy, "2/2 updated, 2 ready")},
			"2026-11-22T02:03:07Z api: healthy (2/2 updated, 2 ready)\n",
		},
		{
			[]Workload{
				{Kind: "Deployment", Namespace: "prod", Name: "web", Status: diagnose.Failed, Reason: diagnose.CrashLoop, Message: "container web exited 1\nrestarting", Progress: "2/3 updated, 1 ready"},
				dep("api", diagnose.Healthy, "2/2 updated, 2 ready"),
			},
			"2026-11-22T02:03:08Z web: failed: CrashLoop — container web exited 1 restarting\n",
		},
	}
	for i, s := range steps {
		out.Reset()
		p.Update(s.ws)
		if out.String() != s.want {
			t.Errorf("step %d printed\n%q\nwant\n%q", i, out.String(), s.want)
		}
		c.t = c.t.Add(time.Second)
	}

	out.Reset()
	p.Event("rolling back to r-41")
	if want := "2026-11-22T02:03:09Z rolling back to r-41\n"; out.String() != want {
		t.Errorf("event printed %q, want %q", out.String(), want)
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Errorf("plain mode wrote an escape sequence: %q", out.String())
	}
	p.Done()
	out.Reset()
	p.Update([]Workload{dep("web", diagnose.Healthy, "")})
	p.Event("late")
	if out.Len() != 0 {
		t.Errorf("output after Done: %q", out.String())
	}
}

func TestProgressTerminalRedrawsInPlace(t *testing.T) {
	var out bytes.Buffer
	p := NewProgress(&out, true, time.Now)
	const up2, clear = "\x1b[2A", "\x1b[2K"

	p.Update([]Workload{dep("web", diagnose.Progressing, "0/3 updated, 0 ready"), dep("api", diagnose.Progressing, "")})
	if want := clear + "… web: 0/3 updated, 0 ready\n" + clear + "… api: progressing\n"; out.String() != want {
		t.Errorf("first draw = %q, want %q", out.String(), want)
	}

	out.Reset()
	p.Update([]Workload{dep("web", diagnose.Progressing, "2/3 updated, 1 ready"), dep("api", diagnose.Healthy, "2/2 updated, 2 ready")})
	if want := up2 + clear + "… web: 2/3 updated, 1 ready\n" + clear + "✓ api: healthy (2/2 updated, 2 ready)\n"; out.String() != want {
		t.Errorf("redraw = %q, want %q", out.String(), want)
	}

	// An event goes above the block, which is drawn again below it.
	out.Reset()
	p.Event("web: new pod web-7d9f8-abcde scheduled")
	want := up2 + clear + "web: new pod web-7d9f8-abcde scheduled\n" + clear + "… web: 2/3 updated, 1 ready\n" + clear + "✓ api: healthy (2/2 updated, 2 ready)\n"
	if out.String() != want {
		t.Errorf("event = %q, want %q", out.String(), want)
	}

	// A shrinking block blanks the rows it no longer uses and returns the cursor below the new block.
	out.Reset()
	p.Update([]Workload{dep("web", diagnose.Healthy, "")})
	if want := up2 + clear + "✓ web: healthy\n" + clear + "\n" + "\x1b[1A"; out.String() != want {
		t.Errorf("shrink = %q, want %q", out.String(), want)
	}

	// After Done the block is left alone: nothing moves the cursor back over later output.
	p.Done()
	out.Reset()
	p.Update([]Workload{dep("web", diagnose.Healthy, "")})
	if out.Len() != 0 {
		t.Errorf("output after Done: %q", out.String())
	}
}

func TestInteractive(t *testing.T) {
	for _, tc := range []struct {
		name   string
		isTerm bool
		env    map[string]string
		want   bool
	}{
		{"terminal", true, nil, true},
		{"not a terminal", false, nil, false},
		{"CI=true", true, map[string]string{"CI": "true"}, false},
		{"CI=1", true, map[string]string{"CI": "1"}, false},
		{"CI=false", true, map[string]string{"CI": "false"}, true},
		{"Azure Pipelines", true, map[string]string{"TF_BUILD": "True"}, false},
		{"dumb terminal", true, map[string]string{"TERM": "dumb"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			if got := interactive(tc.isTerm, getenv); got != tc.want {
				t.Errorf("interactive = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProgressLabels(t *testing.T) {
	ws := []Workload{
		{Kind: "Deployment", Namespace: "prod", Name: "web"},
		{Kind: "Deployment", Namespace: "prod", Name: "api"},
		{Kind: "StatefulSet", Namespace: "prod", Name: "api"},
		{Kind: "Deployment", Namespace: "a", Name: "cache"},
		{Kind: "Deployment", Namespace: "b", Name: "cache"},
	}
	want := []string{"web", "Deployment/api", "StatefulSet/api", "a/Deployment/cache", "b/Deployment/cache"}
	got := progressLabels(ws)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("label[%d] = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		s     string
		width int
		want  string
	}{
		{"web: 2/3 updated", 0, "web: 2/3 updated"},
		{"web: 2/3 updated", 80, "web: 2/3 updated"},
		{"web: 2/3 updated", 10, "web: 2/3…"},
		{"✓ web: ok", 9, "✓ web: …"},
	} {
		if got := truncate(tc.s, tc.width); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.s, tc.width, got, tc.want)
		}
	}
}
