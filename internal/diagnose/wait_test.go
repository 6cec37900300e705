package diagnose

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A wait counted from a time the API kept in whole seconds starts at the latest that time can have been,
// unless the caller saw the state earlier than that (Input.Seen): then from the sighting. A sighting that
// is no earlier, or is before the recorded time itself (the caller's clock behind the cluster's), changes
// nothing. The verdict says when the wait ends (Due) and which state it counts from (Anchors).
func TestWaitCountsFromSighting(t *testing.T) {
	for _, tt := range []struct {
		dir    string
		reason Reason
		mutate func(*testing.T, *Input)
	}{
		{dir: "never-ready", reason: ReadinessFailed, mutate: knownStartup(time.Second)},
		{dir: "config-error", reason: ConfigError, mutate: func(*testing.T, *Input) {}},
	} {
		t.Run(tt.dir, func(t *testing.T) {
			f := loadFixture(t, filepath.Join("testdata", tt.dir))
			tt.mutate(t, &f.in)
			judge := func(now time.Time, seen map[string]time.Time) Verdict {
				in := f.in
				in.Now, in.Seen = now, seen
				return Diagnose(in, DefaultThresholds())
			}
			first := judge(f.started, nil)
			if first.Status != Progressing || first.Unconfirmed != tt.reason || len(first.Anchors) != 1 || first.Due.IsZero() {
				t.Fatalf("at the start: %s, unconfirmed %q, anchors %q, due %v; want progressing, %s unconfirmed, one anchor and a due time",
					first.Status, first.Unconfirmed, first.Anchors, first.Due, tt.reason)
			}
			anchor := first.Anchors[0]
			fields := strings.Fields(anchor)
			recorded, err := time.Parse(time.RFC3339Nano, fields[len(fields)-1])
			if err != nil || recorded.Nanosecond() != 0 {
				t.Fatalf("anchor %q does not end in a whole-second time: %v", anchor, err)
			}
			if want := recorded.Add(time.Second); !first.Due.After(want) {
				t.Fatalf("due %v: want after the latest the recorded %v can have been", first.Due, recorded)
			}
			for _, seen := range []time.Time{recorded.Add(-500 * time.Millisecond), recorded.Add(1500 * time.Millisecond)} {
				if v := judge(f.started, map[string]time.Time{anchor: seen}); !v.Due.Equal(first.Due) {
					t.Errorf("seen at %v (recorded %v): due %v, want %v unchanged", seen, recorded, v.Due, first.Due)
				}
			}

			seen := map[string]time.Time{anchor: recorded.Add(300 * time.Millisecond)}
			due := judge(f.started, seen).Due
			if want := first.Due.Add(-700 * time.Millisecond); !due.Equal(want) {
				t.Fatalf("seen 300ms after the recorded second: due %v, want %v", due, want)
			}
			if v := judge(due.Add(-time.Millisecond), seen); v.Status != Progressing {
				t.Errorf("just before the due time: %s %s, want progressing", v.Status, v.Reason)
			}
			if v := judge(due, seen); v.Status != Failed || v.Reason != tt.reason {
				t.Errorf("at the due time: %s %s, want failed %s", v.Status, v.Reason, tt.reason)
			}
			if v := judge(due, nil); v.Status != Progressing {
				t.Errorf("at that time without the sighting: %s %s, want progressing", v.Status, v.Reason)
			}
		})
	}
}
