package diagnose

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestOnlyUnconfirmedVerdictsTurnWithTime: the tracker judges a workload again on time alone only while
// its verdict carries Verdict.Unconfirmed (or the deadline has passed), so every rule that fails a rollout
// as time passes must show its finding as unconfirmed first. Over every captured fixture: a Progressing
// verdict without one stays what it is however much later it is judged, and one with one names the reason
// it turns into, if it turns, and when (Verdict.Due).
func TestOnlyUnconfirmedVerdictsTurnWithTime(t *testing.T) {
	dirs, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		f := loadFixture(t, filepath.Join("testdata", d.Name()))
		in := f.in
		for _, at := range []time.Duration{0, 2 * time.Second, 10 * time.Second} {
			in.Now = f.captured.Add(at)
			before := Diagnose(in, DefaultThresholds())
			if before.Status != Progressing {
				if before.Unconfirmed != "" {
					t.Errorf("%s at +%s: %s verdict carries Unconfirmed %s", d.Name(), at, before.Status, before.Unconfirmed)
				}
				continue
			}
			checked++
			in.Now = f.captured.Add(at + time.Hour)
			after := Diagnose(in, DefaultThresholds())
			switch {
			case before.Unconfirmed == "" && after.Status != Progressing:
				t.Errorf("%s at +%s: progressing with nothing unconfirmed, yet %s %s an hour later", d.Name(), at, after.Status, after.Reason)
			case before.Unconfirmed != "" && after.Status == Failed && after.Reason != before.Unconfirmed:
				t.Logf("%s at +%s: unconfirmed %s turned into %s (another finding it was timing confirmed first)", d.Name(), at, before.Unconfirmed, after.Reason)
			}
			// The tracker judges again at Due: a verdict that fails as time passes says when, and it is so.
			if after.Status == Failed && before.Due.IsZero() {
				t.Errorf("%s at +%s: progressing with no due time, yet %s %s an hour later", d.Name(), at, after.Status, after.Reason)
			}
			if !before.Due.IsZero() {
				in.Now = before.Due.Add(-time.Millisecond)
				if v := Diagnose(in, DefaultThresholds()); v.Status != Progressing {
					t.Errorf("%s at +%s: due at %s, yet already %s %s a millisecond before", d.Name(), at, before.Due, v.Status, v.Reason)
				}
				in.Now = before.Due
				if v := Diagnose(in, DefaultThresholds()); v.Status != Failed {
					t.Errorf("%s at +%s: due at %s, yet %s then", d.Name(), at, before.Due, v.Status)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no fixture gave a progressing verdict: the property was not checked")
	}
}
