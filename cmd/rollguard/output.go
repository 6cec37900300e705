package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/report"
)

// outputFlags are the result encodings every tracking command offers.
type outputFlags struct {
	format   format
	junit    string
	markdown string
	outputs  string
	// written is set once a result went out, so an error after it is not reported twice.
	written bool
}

func (o *outputFlags) add(fs *pflag.FlagSet) {
	addFormat(fs, &o.format, "result format on stdout: text or json")
	fs.StringVar(&o.junit, "junit", "", "also write a JUnit XML report to `FILE` (Azure DevOps, GitLab)")
	fs.StringVar(&o.markdown, "summary-markdown", "", "also write a Markdown summary to `FILE` (e.g. $GITHUB_STEP_SUMMARY)")
	fs.StringVar(&o.outputs, "outputs-file", "", "also append ROLLGUARD_RELEASE, _OUTCOME, _REASON, _ROLLED_BACK, _REVISION, _EXIT_CODE, _MESSAGE as KEY=VALUE lines to `FILE` ($GITHUB_OUTPUT, a GitLab dotenv report)")
}

// validate checks the flags and that the report files can be written, before anything changes: a report
// that cannot be written must not turn a healthy deploy into a failure after the cluster changed.
func (o *outputFlags) validate() error {
	for _, f := range []struct {
		flag string
		path *string
	}{{"--junit", &o.junit}, {"--summary-markdown", &o.markdown}, {"--outputs-file", &o.outputs}} {
		if *f.path == "" {
			continue
		}
		if err := checkWritable(*f.path); err != nil {
			bad := *f.path
			*f.path = "" // the error result still goes to the other outputs, not to this one
			return exitcode.BadInputf("%s %s: cannot write the report there (%v); pass a writable path. Nothing was changed", f.flag, bad, errors.Unwrap(err))
		}
	}
	return nil
}

// checkWritable opens path for writing without changing it; a file it had to create is removed again.
func checkWritable(path string) error {
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	if os.IsNotExist(statErr) {
		return os.Remove(path)
	}
	return nil
}

// write prints the result and writes the report files.
func (o *outputFlags) write(stdout io.Writer, r *report.Result) error {
	o.written = true
	var err error
	switch {
	case o.format == formatJSON:
		err = report.JSON(stdout, *r)
	case r.Outcome != report.Error:
		// An error result in text is the "Error:" line on stderr; stdout stays empty.
		err = report.Human(stdout, *r)
	}
	if err != nil {
		return fmt.Errorf("writing the result: %w", err)
	}
	if o.junit != "" {
		if err := writeFile(o.junit, os.O_TRUNC, func(w io.Writer) error { return report.JUnit(w, *r) }); err != nil {
			return err
		}
	}
	// Appending, not truncating: GitHub's step summary and output files collect every step's lines.
	if o.markdown != "" {
		if err := writeFile(o.markdown, os.O_APPEND, func(w io.Writer) error { return report.Markdown(w, *r) }); err != nil {
			return err
		}
	}
	if o.outputs != "" {
		if err := writeFile(o.outputs, os.O_APPEND, func(w io.Writer) error { return report.Outputs(w, *r) }); err != nil {
			return err
		}
	}
	return nil
}

// run runs a command's body so that every exit code comes with a result: when the body fails before it
// wrote one (bad input, an unreachable cluster, a refused preflight), the error itself is written as the
// result (outcome "error") to -o json, --junit and --summary-markdown, so a CI parser always has input.
func (o *outputFlags) run(g *globals, command string, body func() error) error {
	err := body()
	if err == nil || o.written {
		return err
	}
	res := &report.Result{Command: command, Outcome: report.Error, Message: err.Error(), FinishedAt: time.Now(), ExitCode: exitcode.Of(err)}
	if werr := o.write(g.stdout, res); werr != nil {
		fmt.Fprintln(g.stderr, "Warning:", werr)
	}
	return err
}

// wrap is run for a cobra RunE.
func (o *outputFlags) wrap(g *globals, command string, runE func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		return o.run(g, command, func() error { return runE(cmd, args) })
	}
}

// writeFile writes a report file; mode is os.O_TRUNC (replace it) or os.O_APPEND.
func writeFile(path string, mode int, fn func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|mode, 0o644)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := fn(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// track runs a tracking action with live progress on stderr, prints its result and turns the outcome into
// the exit code. w is the action's Watch.
func (o *outputFlags) track(g *globals, w *action.Watch, run func() (*report.Result, error)) error {
	w.Log = g.logger()
	progress := progressPrinter(g.stderr)
	w.OnUpdate, w.OnEvent = progress.Update, progress.Event
	started := time.Now()
	res, err := run()
	progress.Done()
	if res != nil && res.StartedAt.IsZero() {
		res.StartedAt = started
	}
	// A result without an outcome (refused before anything ran) is written by run as an error result.
	if res == nil || err != nil && res.Outcome == "" {
		return err
	}
	if err == nil {
		err = resultError(res)
	}
	res.ExitCode = exitcode.Of(err)
	if werr := o.write(g.stdout, res); werr != nil {
		return werr
	}
	return err
}

// resultError turns a run's outcome into the error that sets the exit code.
func resultError(r *report.Result) error {
	switch r.Outcome {
	case report.Succeeded:
		return nil
	case report.RolledBack:
		return exitcode.New(exitcode.RolledBack, fmt.Errorf("release failed and was rolled back: %s", r.Message))
	case report.PendingApproval:
		return exitcode.New(exitcode.PendingApproval, fmt.Errorf("release failed; rollback waits for approval: %s", r.Message))
	case report.Interrupted, report.Superseded:
		return exitcode.New(exitcode.NotRecovered, errors.New(r.Message))
	default:
		return exitcode.New(exitcode.NotRecovered, fmt.Errorf("release failed: %s", r.Message))
	}
}

// progressPrinter shows live progress on stderr, so stdout stays clean for -o json. Call Done before
// printing the result so a terminal's redrawn block is left in place.
func progressPrinter(stderr io.Writer) *report.Progress {
	tty := false
	if f, ok := stderr.(*os.File); ok {
		tty = report.IsTerminal(f)
	}
	return report.NewProgress(stderr, tty, time.Now)
}

// addThresholdFlags exposes the diagnosis' grace windows; the defaults report a broken release within
// seconds without failing a healthy but slow one.
func addThresholdFlags(fs *pflag.FlagSet, th *diagnose.Thresholds) {
	*th = diagnose.DefaultThresholds()
	fs.DurationVar(&th.ImagePullGrace, "image-pull-grace", th.ImagePullGrace, "tolerate transient image pull errors (registry unreachable: timeouts, DNS, TLS, 5xx, 429) this long; a missing image or refused access fails at once")
	fs.Int32Var(&th.CrashLoopRestarts, "crash-loop-restarts", th.CrashLoopRestarts, "restarts after which a container is in a crash loop even before CrashLoopBackOff")
	fs.DurationVar(&th.ReadinessSlack, "readiness-slack", th.ReadinessSlack, "first deploy (no earlier probed revision to learn from), and any container after a restart: added to the probes' budget (initialDelay + period × failureThreshold) before readiness fails")
	fs.DurationVar(&th.HistorySlack, "history-slack", th.HistorySlack, "with an earlier probed revision: a container's first start fails readiness after the larger of the probes' budget and --startup-multiple × its start-up time, plus this")
	fs.IntVar(&th.StartupMultiple, "startup-multiple", th.StartupMultiple, "how many times the previous revision's start-up time a new pod may take to become ready")
	fs.DurationVar(&th.UnschedulableGrace, "unschedulable-grace", th.UnschedulableGrace, "how long new pods may stay unschedulable on a cluster that cannot grow (no cluster-autoscaler, no Karpenter)")
	fs.DurationVar(&th.ScaleUpGrace, "scale-up-grace", th.ScaleUpGrace, "how long new pods may stay unschedulable where the cluster may grow (or old pods still terminate) before the autoscaler speaks")
	fs.DurationVar(&th.ScaleUpWait, "scale-up-wait", th.ScaleUpWait, "cap on the wait once the autoscaler said it is adding nodes (TriggeredScaleUp); NotTriggerScaleUp fails at once")
	fs.DurationVar(&th.QuotaGrace, "quota-grace", th.QuotaGrace, "how long exceeded quota is tolerated while old pods terminate, pod creation errors that may pass on a retry, and a missing ConfigMap or Secret that exists now (or could not be looked up)")
	fs.DurationVar(&th.RefusalGrace, "refusal-grace", th.RefusalGrace, "how long pod creation refused for exceeded quota, a LimitRange's max/min or a missing ServiceAccount may last (someone may be fixing it) before the release fails")
	fs.DurationVar(&th.ConfigGrace, "config-grace", th.ConfigGrace, "how long a container may wait for a ConfigMap, Secret or key that is still missing (an operator may create it moments after the apply)")
}
