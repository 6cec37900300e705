package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/internal/diagnose"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

var applied = time.Date(2026, 11, 22, 2, 3, 4, 123_000_000, time.UTC)

func at(d time.Duration) time.Time { return applied.Add(d) }

// rolledBack: web fails to pull its image, api became healthy, db had no verdict yet when rollguard rolled
// back to r-41, which came back healthy.
func rolledBack() Result {
	return Result{
		Release:     "r-42",
		Command:     "deploy",
		Outcome:     RolledBack,
		AppliedAt:   applied,
		FinishedAt:  at(42500 * time.Millisecond),
		Namespace:   "prod",
		ChangeCause: "ci: pipeline 1234 (abc123)",
		Message:     "Deployment/web failed: ImagePullFailed; rolled back to r-41",
		Workloads: []Workload{
			{
				Kind: "Deployment", Namespace: "prod", Name: "web",
				Status: diagnose.Failed, Reason: diagnose.ImagePullFailed,
				Message:    `Back-off pulling image "registry.example.com/web:v2"`,
				DetectedAt: at(2100 * time.Millisecond),
				Progress:   "1/3 updated, 0 ready",
				Evidence: []diagnose.Evidence{
					{Object: "Pod/web-7d9f8-abcde", Text: `Warning Failed: Failed to pull image "registry.example.com/web:v2": manifest unknown`},
					{Object: "Pod/web-7d9f8-abcde", Text: "container web: Waiting (ImagePullBackOff)"},
				},
				Fix:    `check that tag "v2" exists in registry.example.com/web and that the pull secret can read it`,
				Images: []string{"registry.example.com/web:v2"},
			},
			{
				Kind: "Deployment", Namespace: "prod", Name: "api",
				Status: diagnose.Healthy, DetectedAt: at(1400 * time.Millisecond),
				Progress: "2/2 updated, 2 ready", Images: []string{"registry.example.com/api:v7"},
			},
			{
				Kind: "StatefulSet", Namespace: "prod", Name: "db",
				Status: diagnose.Progressing, Progress: "1/3 updated, 1 ready",
			},
		},
		Rollback: &Rollback{
			ToRelease:  "r-41",
			Outcome:    Succeeded,
			StartedAt:  at(2300 * time.Millisecond),
			FinishedAt: at(42500 * time.Millisecond),
			Workloads: []Workload{
				{Kind: "Deployment", Namespace: "prod", Name: "web", Status: diagnose.Healthy, DetectedAt: at(30 * time.Second), Progress: "3/3 updated, 3 ready"},
				{Kind: "Deployment", Namespace: "prod", Name: "api", Status: diagnose.Healthy, DetectedAt: at(12 * time.Second), Progress: "2/2 updated, 2 ready"},
				{Kind: "StatefulSet", Namespace: "prod", Name: "db", Status: diagnose.Healthy, DetectedAt: at(40 * time.Second), Progress: "3/3 updated, 3 ready"},
			},
		},
	}
}

func succeeded() Result {
	return Result{
		Release:    "r-43",
		Command:    "deploy",
		Outcome:    Succeeded,
		AppliedAt:  applied,
		FinishedAt: at(18250 * time.Millisecond),
		Namespace:  "prod",
		Message:    "2 workloads healthy",
		Workloads: []Workload{
			{Kind: "Job", Namespace: "prod", Name: "migrate", Status: diagnose.Healthy, DetectedAt: at(-3 * time.Second), Progress: "1/1 succeeded, 0 running, 0 failed", Phase: "pre-deploy"},
			{Kind: "Deployment", Namespace: "prod", Name: "web", Status: diagnose.Healthy, DetectedAt: at(18 * time.Second), Progress: "3/3 updated, 3 ready", Images: []string{"registry.example.com/web:v3"}},
			{Kind: "Deployment", Namespace: "prod", Name: "api", Status: diagnose.Healthy, DetectedAt: at(9500 * time.Millisecond), Progress: "2/2 updated, 2 ready"},
			{Kind: "Job", Namespace: "prod", Name: "smoke", Status: diagnose.Healthy, DetectedAt: at(18200 * time.Millisecond), Progress: "1/1 succeeded, 0 running, 0 failed", Phase: "verify"},
		},
		Phases: []Phase{
			{Name: "pre-deploy", Outcome: Succeeded, StartedAt: at(-5 * time.Second), FinishedAt: at(-3 * time.Second), Message: "1 Job completed: Job/migrate"},
			{Name: "verify", Outcome: Succeeded, StartedAt: at(18 * time.Second), FinishedAt: at(18200 * time.Millisecond), Message: "1 Job completed: Job/smoke"},
		},
		Warnings: []string{"Deployment/api has no readinessProbe: rollguard cannot see readiness failures in it"},
	}
}

// timedOutHeld: a worker in another namespace never became ready before the deadline and the rollback
// waits for approval. Its text holds characters each encoding must escape.
func timedOutHeld() Result {
	return Result{
		Command:    "deploy",
		Outcome:    PendingApproval,
		AppliedAt:  applied,
		FinishedAt: at(5 * time.Minute),
		Namespace:  "prod",
		Message:    "Deployment/worker timed out; rollback to r-40 held for approval",
		Workloads: []Workload{
			{
				Kind: "Deployment", Namespace: "batch", Name: "worker",
				Status: diagnose.Progressing, Reason: diagnose.Timeout, DetectedAt: at(5 * time.Minute),
				Message:  "not ready after 5m0s: readiness probe <http-get :8080/healthz> | status 503",
				Progress: "2/4 updated, 1 ready",
				Evidence: []diagnose.Evidence{
					{Object: "Pod/worker-5c4-xyz", Text: "Warning Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503"},
					{Object: "Pod/worker-5c4-xyz", Text: "log tail:\n```\npanic: config *missing*\n```"},
				},
				Fix: "see the container log; the probe on :8080/healthz must return 2xx",
			},
		},
		Rollback: &Rollback{ToRelease: "r-40", Outcome: PendingApproval, Message: "run `rollguard approve r-40` to roll back"},
	}
}

var fixtures = []struct {
	name   string
	result func() Result
}{
	{"rolled_back", rolledBack},
	{"succeeded", succeeded},
	{"timeout_pending_approval", timedOutHeld},
}

var encoders = []struct {
	ext    string
	encode func(*bytes.Buffer, Result) error
}{
	{"json", func(b *bytes.Buffer, r Result) error { return JSON(b, r) }},
	{"xml", func(b *bytes.Buffer, r Result) error { return JUnit(b, r) }},
	{"md", func(b *bytes.Buffer, r Result) error { return Markdown(b, r) }},
	{"txt", func(b *bytes.Buffer, r Result) error { return Human(b, r) }},
	{"env", func(b *bytes.Buffer, r Result) error { return Outputs(b, r) }},
}

func TestGolden(t *testing.T) {
	for _, f := range fixtures {
		for _, e := range encoders {
			t.Run(f.name+"."+e.ext, func(t *testing.T) {
				var got bytes.Buffer
				if err := e.encode(&got, f.result()); err != nil {
					t.Fatal(err)
				}
				path := filepath.Join("testdata", f.name+"."+e.ext+".golden")
				if *update {
					if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./internal/report/ -update to create it)", err)
				}
				if got.String() != string(want) {
					t.Errorf("%s differs from %s (-update to accept):\n--- got\n%s\n--- want\n%s", e.ext, path, got.String(), want)
				}
			})
		}
	}
}

var msTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

func TestJSONSchema(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			r := f.result()
			var buf bytes.Buffer
			if err := JSON(&buf, r); err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, buf.String())
			}
			if doc["outcome"] != string(r.Outcome) {
				t.Errorf("outcome = %v, want %q", doc["outcome"], r.Outcome)
			}
			for _, k := range []string{"appliedAt", "finishedAt"} {
				if s, _ := doc[k].(string); !msTime.MatchString(s) {
					t.Errorf("%s = %v, want RFC 3339 UTC with milliseconds", k, doc[k])
				}
			}
			if doc["appliedAt"] != "2026-11-22T02:03:04.123Z" {
				t.Errorf("appliedAt = %v", doc["appliedAt"])
			}
			ws, ok := doc["workloads"].([]any)
			if !ok || len(ws) != len(r.Workloads) {
				t.Fatalf("workloads = %v, want %d entries", doc["workloads"], len(r.Workloads))
			}
			for i, raw := range ws {
				w := raw.(map[string]any)
				for _, k := range []string{"kind", "namespace", "name", "status", "reason", "message", "detectedAt"} {
					if _, ok := w[k]; !ok {
						t.Errorf("workloads[%d] has no %q key: %v", i, k, w)
					}
				}
				want := r.Workloads[i]
				if w["kind"] != want.Kind || w["name"] != want.Name || w["status"] != string(want.Status) || w["reason"] != string(want.Reason) {
					t.Errorf("workloads[%d] = %v, want %+v", i, w, want)
				}
				switch det := w["detectedAt"]; {
				case want.DetectedAt.IsZero() && det != nil:
					t.Errorf("workloads[%d].detectedAt = %v, want null (no verdict)", i, det)
				case !want.DetectedAt.IsZero():
					if s, _ := det.(string); !msTime.MatchString(s) {
						t.Errorf("workloads[%d].detectedAt = %v, want RFC 3339 ms", i, det)
					}
				}
			}
			if (r.Rollback == nil) != (doc["rollback"] == nil) {
				t.Errorf("rollback = %v, want present=%v", doc["rollback"], r.Rollback != nil)
			}
		})
	}
}

func TestJSONTimes(t *testing.T) {
	east := time.FixedZone("UTC+9", 9*3600)
	r := Result{
		Command:    "status",
		Outcome:    Succeeded,
		AppliedAt:  time.Date(2026, 11, 22, 11, 3, 4, 987_654_321, east), // 02:03:04.987 UTC
		FinishedAt: time.Date(2026, 11, 22, 11, 3, 5, 0, east),
		Workloads:  []Workload{{Kind: "Deployment", Name: "web", Status: diagnose.Progressing}},
	}
	var buf bytes.Buffer
	if err := JSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		AppliedAt       string  `json:"appliedAt"`
		FinishedAt      string  `json:"finishedAt"`
		DurationSeconds float64 `json:"durationSeconds"`
		Workloads       []struct {
			DetectedAt *string `json:"detectedAt"`
		} `json:"workloads"`
		Rollback *struct{} `json:"rollback"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.AppliedAt != "2026-11-22T02:03:04.987Z" || doc.FinishedAt != "2026-11-22T02:03:05.000Z" {
		t.Errorf("times = %q, %q; want UTC with milliseconds", doc.AppliedAt, doc.FinishedAt)
	}
	if doc.DurationSeconds != 0.012 {
		t.Errorf("durationSeconds = %v, want 0.012", doc.DurationSeconds)
	}
	if doc.Workloads[0].DetectedAt != nil {
		t.Errorf("detectedAt = %q for a progressing workload, want null", *doc.Workloads[0].DetectedAt)
	}
	if !strings.Contains(buf.String(), `"rollback": null`) {
		t.Errorf("no rollback should be an explicit null:\n%s", buf.String())
	}
}

func TestJSONEmptyWorkloadsIsArray(t *testing.T) {
	var buf bytes.Buffer
	if err := JSON(&buf, Result{Command: "deploy", Outcome: Failed}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"workloads": []`) {
		t.Errorf("want an empty workloads array:\n%s", buf.String())
	}
}

// junitDoc is the structure CI systems read, parsed independently of the encoder's own types.
type junitDoc struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Suites   []struct {
		Name      string `xml:"name,attr"`
		Tests     int    `xml:"tests,attr"`
		Failures  int    `xml:"failures,attr"`
		Skipped   int    `xml:"skipped,attr"`
		Time      string `xml:"time,attr"`
		Timestamp string `xml:"timestamp,attr"`
		Cases     []struct {
			Classname string `xml:"classname,attr"`
			Name      string `xml:"name,attr"`
			Time      string `xml:"time,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
				Body    string `xml:",chardata"`
			} `xml:"failure"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
		} `xml:"testcase"`
		SystemOut string `xml:"system-out"`
	} `xml:"testsuite"`
}

func parseJUnit(t *testing.T, r Result) junitDoc {
	t.Helper()
	var buf bytes.Buffer
	if err := JUnit(&buf, r); err != nil {
		t.Fatal(err)
	}
	var doc junitDoc
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("output is not XML: %v\n%s", err, buf.String())
	}
	if len(doc.Suites) != 1 {
		t.Fatalf("want one testsuite, got %d", len(doc.Suites))
	}
	return doc
}

func TestJUnitStructure(t *testing.T) {
	doc := parseJUnit(t, rolledBack())
	s := doc.Suites[0]
	if s.Name != "rollguard deploy" || s.Tests != 3 || s.Failures != 1 || s.Skipped != 1 || s.Time != "42.500" {
		t.Errorf("suite = %q tests=%d failures=%d skipped=%d time=%s; want rollguard deploy, 3, 1, 1, 42.500",
			s.Name, s.Tests, s.Failures, s.Skipped, s.Time)
	}
	if doc.Tests != 3 || doc.Failures != 1 {
		t.Errorf("testsuites tests=%d failures=%d, want 3, 1", doc.Tests, doc.Failures)
	}
	if s.Timestamp != "2026-11-22T02:03:04" {
		t.Errorf("timestamp = %q", s.Timestamp)
	}
	if len(s.Cases) != 3 {
		t.Fatalf("want 3 test cases, got %d", len(s.Cases))
	}
	web, api, db := s.Cases[0], s.Cases[1], s.Cases[2]
	if web.Classname != "prod" || web.Name != "Deployment/web" || web.Time != "2.100" {
		t.Errorf("web case = %s %s %s", web.Classname, web.Name, web.Time)
	}
	if web.Failure == nil {
		t.Fatal("web should fail")
	}
	if web.Failure.Type != "ImagePullFailed" || web.Failure.Message != `ImagePullFailed: Back-off pulling image "registry.example.com/web:v2"` {
		t.Errorf("web failure = type %q message %q", web.Failure.Type, web.Failure.Message)
	}
	for _, want := range []string{"Pod/web-7d9f8-abcde: Warning Failed: Failed to pull image", "fix: check that tag"} {
		if !strings.Contains(web.Failure.Body, want) {
			t.Errorf("web failure body lacks %q:\n%s", want, web.Failure.Body)
		}
	}
	if api.Failure != nil || api.Skipped != nil || api.Time != "1.400" {
		t.Errorf("api case = %+v, want passed in 1.400s", api)
	}
	if db.Skipped == nil || db.Failure != nil || !strings.Contains(db.Skipped.Message, "1/3 updated, 1 ready") {
		t.Errorf("db case = %+v, want skipped with its progress", db)
	}
	if !strings.Contains(s.SystemOut, "rollback to release r-41: succeeded") {
		t.Errorf("system-out lacks the rollback:\n%s", s.SystemOut)
	}
	for _, c := range s.Cases {
		if _, err := strconv.ParseFloat(c.Time, 64); err != nil {
			t.Errorf("case %s time %q is not seconds: %v", c.Name, c.Time, err)
		}
	}
}

func TestJUnitTimeoutFails(t *testing.T) {
	s := parseJUnit(t, timedOutHeld()).Suites[0]
	if len(s.Cases) != 1 || s.Cases[0].Failure == nil {
		t.Fatalf("want the timed-out workload as a failure, got %+v", s.Cases)
	}
	c := s.Cases[0]
	if c.Classname != "batch" || c.Failure.Type != "Timeout" || c.Time != "300.000" {
		t.Errorf("case = class %q type %q time %q; want batch, Timeout, 300.000", c.Classname, c.Failure.Type, c.Time)
	}
	// Text from events round-trips through XML escaping untouched.
	if !strings.Contains(c.Failure.Message, "<http-get :8080/healthz> | status 503") {
		t.Errorf("failure message = %q", c.Failure.Message)
	}
}

// Log tails carry terminal colors (ESC) and may contain "]]>"; the report must stay well-formed XML.
func TestJUnitHostileText(t *testing.T) {
	r := rolledBack()
	r.Workloads[0].Evidence = append(r.Workloads[0].Evidence, diagnose.Evidence{Object: "Pod/web-1", Text: "\x1b[31mERROR\x1b[0m x[a[1]]>0 ]]> done"})
	r.Workloads[0].Message = "bad \x00 byte"
	c := parseJUnit(t, r).Suites[0].Cases[0]
	if !strings.Contains(c.Failure.Body, "\uFFFD[31mERROR\uFFFD[0m x[a[1]]>0 ]]> done") {
		t.Errorf("body = %q", c.Failure.Body)
	}
	if c.Failure.Message != "ImagePullFailed: bad \uFFFD byte" {
		t.Errorf("message = %q", c.Failure.Message)
	}
}

// A run that failed before any workload had a verdict must still fail the pipeline's test report.
func TestJUnitFailedRunWithoutFailingWorkload(t *testing.T) {
	for _, r := range []Result{
		{Command: "deploy", Outcome: Failed, Namespace: "prod", Release: "r-9", Message: "apply refused: webhook denied"},
		{Command: "deploy", Outcome: RollbackFailed, Namespace: "prod", Message: "stopped",
			Workloads: []Workload{{Kind: "Deployment", Name: "web", Status: diagnose.Progressing}}},
	} {
		s := parseJUnit(t, r).Suites[0]
		last := s.Cases[len(s.Cases)-1]
		if s.Failures != 1 || last.Failure == nil || last.Failure.Type != string(r.Outcome) {
			t.Errorf("%s: failures=%d last=%+v; want one failure typed %s", r.Message, s.Failures, last, r.Outcome)
		}
	}
	// Four workloads (two of them phase Jobs) and two phases.
	if s := parseJUnit(t, succeeded()).Suites[0]; s.Failures != 0 || s.Tests != 6 {
		t.Errorf("succeeded run: tests=%d failures=%d, want 6, 0", s.Tests, s.Failures)
	}
}

func TestMarkdownEscapesClusterText(t *testing.T) {
	var buf bytes.Buffer
	if err := Markdown(&buf, timedOutHeld()); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	var row string
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "| `Deployment/worker`") {
			row = l
		}
	}
	if row == "" {
		t.Fatalf("no table row for the worker:\n%s", md)
	}
	// Only unescaped pipes delimit cells: 5 of them for 4 columns.
	if n := strings.Count(row, "|") - strings.Count(row, `\|`); n != 5 {
		t.Errorf("row has %d cell delimiters, want 5: %s", n, row)
	}
	if strings.Contains(md, "<http-get") {
		t.Errorf("raw HTML from an event reached the summary:\n%s", md)
	}
	// The evidence holds a ``` block; its fence must be longer so it cannot end early.
	if !strings.Contains(md, "````text\n") {
		t.Errorf("evidence fence not lengthened past the ``` inside it:\n%s", md)
	}
}

func TestHumanFailureLine(t *testing.T) {
	var buf bytes.Buffer
	if err := Human(&buf, rolledBack()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	want := `✗ Deployment/web failed: ImagePullFailed — Back-off pulling image "registry.example.com/web:v2" (detected 2.1s after apply)`
	if lines[0] != want {
		t.Errorf("first line\n got %s\nwant %s", lines[0], want)
	}
	if !strings.HasPrefix(lines[1], "    Pod/web-7d9f8-abcde: ") || !strings.HasPrefix(lines[3], "    fix: ") {
		t.Errorf("evidence and fix not indented under the failure:\n%s", buf.String())
	}
	if last := lines[len(lines)-2]; !strings.HasPrefix(last, "Result: rolled back (42.5s)") {
		t.Errorf("last line = %q", last)
	}
}

func TestFromVerdict(t *testing.T) {
	now := at(3 * time.Second)
	v := diagnose.Verdict{Status: diagnose.Failed, Reason: diagnose.CrashLoop, Message: "m", Progress: "p", Fix: "f",
		Evidence: []diagnose.Evidence{{Object: "Pod/a", Text: "t"}}}
	w := FromVerdict("Deployment", "prod", "web", v, now)
	if w.ID() != "Deployment/web" || w.Status != diagnose.Failed || w.Reason != diagnose.CrashLoop || !w.DetectedAt.Equal(now) ||
		w.Message != "m" || w.Progress != "p" || w.Fix != "f" || len(w.Evidence) != 1 {
		t.Errorf("FromVerdict = %+v", w)
	}
	if w := FromVerdict("Deployment", "prod", "web", diagnose.Verdict{Status: diagnose.Progressing}, now); !w.DetectedAt.IsZero() {
		t.Errorf("progressing workload got DetectedAt %v, want zero", w.DetectedAt)
	}
	timedOut := diagnose.Verdict{Status: diagnose.Progressing, Reason: diagnose.Timeout}
	if w := FromVerdict("Deployment", "prod", "web", timedOut, now); !w.DetectedAt.Equal(now) {
		t.Errorf("timed-out workload got DetectedAt %v, want %v", w.DetectedAt, now)
	}
}
