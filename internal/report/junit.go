package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/oneline"
)

// The JUnit layout is the common denominator that Azure DevOps (PublishTestResults@2, testResultsFormat
// JUnit) and GitLab (artifacts:reports:junit) both read: <testsuites> holding one <testsuite>, one
// <testcase> per workload, a <failure> per workload that did not end healthy.

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  *junitText      `xml:"system-out,omitempty"`
}

// junitText is multi-line text kept readable in the file (CDATA rather than &#xA; escapes).
type junitText struct {
	Text string `xml:",cdata"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Classname string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",cdata"`
}

// junitTimestamp is the JUnit schema's timestamp: ISO 8601 without a zone, which both CI systems read as UTC.
const junitTimestamp = "2006-01-02T15:04:05"

// JUnit writes r as a JUnit XML report: one test case per workload, named Kind/name in a class named for
// its namespace. A workload that failed or timed out (still progressing, with a reason such as Timeout) is a
// failure whose type is the reason and whose body holds the evidence and the fix. A workload still
// progressing without a reason had no verdict (the run stopped early because another failed): skipped.
// Each case's time is how long the workload took from apply to its verdict.
func JUnit(w io.Writer, r Result) error {
	suite := junitSuite{
		Name:  "rollguard " + r.Command,
		Time:  seconds(r.Duration()),
		Cases: []junitCase{},
	}
	if start := firstNonZero(r.AppliedAt, r.FinishedAt); !start.IsZero() {
		suite.Timestamp = start.UTC().Format(junitTimestamp)
	}
	for _, p := range [][2]string{
		{"release", r.Release}, {"outcome", string(r.Outcome)}, {"namespace", r.Namespace}, {"changeCause", r.ChangeCause},
	} {
		if p[1] != "" {
			suite.Properties = append(suite.Properties, junitProperty{Name: p[0], Value: p[1]})
		}
	}
	for _, wl := range r.Workloads {
		ns := wl.Namespace
		if ns == "" {
			ns = r.Namespace
		}
		end := wl.DetectedAt
		if end.IsZero() {
			end = r.FinishedAt
		}
		c := junitCase{Classname: ns, Name: workloadLabel(wl), Time: seconds(between(r.AppliedAt, end))}
		switch {
		case wl.Status == diagnose.Healthy:
		case unfinished(wl):
			// Not a timeout: the run stopped (another workload failed) before this one had a verdict.
			c.Skipped = &junitSkipped{Message: strings.TrimSpace("no verdict: still progressing when the run ended " + paren(wl.Progress))}
			suite.Skipped++
		default:
			c.Failure = junitFailureFor(wl)
			suite.Failures++
		}
		suite.Cases = append(suite.Cases, c)
	}
	for _, p := range r.Phases {
		c := phaseCase(r.Namespace, p)
		if c.Failure != nil {
			suite.Failures++
		}
		suite.Cases = append(suite.Cases, c)
	}
	// A run that did not succeed must not read as green in the pipeline even when no workload failed
	// (e.g. it failed before any workload was tracked): report the outcome itself as a failed case.
	if r.Outcome != Succeeded && suite.Failures == 0 {
		name := "Release"
		if r.Release != "" {
			name += "/" + r.Release
		}
		suite.Cases = append(suite.Cases, junitCase{
			Classname: r.Namespace,
			Name:      name,
			Time:      suite.Time,
			Failure:   &junitFailure{Message: r.Outcome.text() + ": " + oneline.Fold(r.Message), Type: string(r.Outcome), Body: xmlChars(r.Message)},
		})
		suite.Failures++
	}
	suite.Tests = len(suite.Cases)
	if out := junitSystemOut(r); out != "" {
		suite.SystemOut = &junitText{Text: xmlChars(out)}
	}

	doc := junitSuites{
		Name:     "rollguard",
		Tests:    suite.Tests,
		Failures: suite.Failures,
		Skipped:  suite.Skipped,
		Time:     suite.Time,
		Suites:   []junitSuite{suite},
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("writing JUnit report: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("writing JUnit report: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("writing JUnit report: %w", err)
	}
	return nil
}

func junitFailureFor(wl Workload) *junitFailure {
	reason := string(failureReason(wl))
	msg := reason
	if d := oneline.Fold(detail(wl)); d != "" {
		msg += ": " + d
	}
	var body strings.Builder
	if wl.Message != "" {
		body.WriteString(wl.Message + "\n")
	}
	if wl.Progress != "" {
		body.WriteString("progress: " + wl.Progress + "\n")
	}
	for _, e := range wl.Evidence {
		body.WriteString(evidenceLine(e) + "\n")
	}
	if wl.Fix != "" {
		body.WriteString("fix: " + wl.Fix + "\n")
	}
	return &junitFailure{Message: msg, Type: reason, Body: xmlChars(body.String())}
}

// junitSystemOut carries what has no test case of its own: the summary and the rollback.
func junitSystemOut(r Result) string {
	var b strings.Builder
	if r.Message != "" {
		b.WriteString(r.Message + "\n")
	}
	for _, w := range r.Warnings {
		b.WriteString("warning: " + w + "\n")
	}
	if rb := r.Rollback; rb != nil {
		b.WriteString(rollbackHeadline(rb) + "\n")
		for _, wl := range rb.Workloads {
			b.WriteString("  " + wl.ID() + " " + string(wl.Status))
			if d := oneline.Fold(detail(wl)); d != "" {
				b.WriteString(": " + d)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// xmlChars replaces what XML 1.0 cannot hold at all, even in CDATA (control characters such as the ESC of
// colored log tails), so a CI system never rejects the whole report. encoding/xml already does this for
// attributes and escaped text, but writes CDATA as given.
func xmlChars(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r',
			r >= 0x20 && r <= 0xD7FF,
			r >= 0xE000 && r <= 0xFFFD,
			r >= 0x10000 && r <= 0x10FFFF:
			return r
		}
		return '\uFFFD'
	}, s)
}
