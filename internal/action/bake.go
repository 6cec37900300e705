package action

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rollguard/rollguard/internal/crashpoint"
	"github.com/rollguard/rollguard/internal/report"
	"github.com/rollguard/rollguard/internal/track"
)

// bake keeps watching a release that became healthy for Deploy.Bake (--bake, `bake:` per environment): a
// crash, a restart or readiness lost in the new pods inside the window fails the release and the
// on-failure policy runs, as the "monitor the deployment" step of a pipeline would. The rules are
// diagnose.Bake's. The window has a progress line when it opens and its outcome goes into the record.
func (d *Deploy) bake(ctx context.Context, s *State) error {
	if d.Bake <= 0 || s.Result == nil || outcomeOf(s.Workloads) != report.Succeeded {
		return nil
	}
	var targets []track.Target
	var names []string
	for _, t := range s.Targets {
		if t.Kind != "Job" { // a completed Job has nothing left to bake
			targets = append(targets, t)
			names = append(names, t.String())
		}
	}
	if len(targets) == 0 {
		return nil
	}
	started := time.Now()
	end := started.Add(d.Bake)
	d.event(fmt.Sprintf("bake: watching %s for %s, until %s: a crash, a restart or lost readiness in the new pods fails the release",
		strings.Join(names, ", "), d.Bake, end.UTC().Format(time.TimeOnly)))
	opts := track.Options{Thresholds: d.Thresholds, Started: started, Deadline: end, Bake: true, Log: d.logger(),
		OnUpdate: func(st []track.Status) {
			crashpoint.Hit("deploy:baking")
			if d.OnUpdate != nil {
				d.OnUpdate(workloads(st))
			}
		}}
	st, err := track.Track(ctx, s.Client, targets, opts)
	ws := workloads(st)
	if cause := stopCause(ctx); cause != nil {
		s.Done = true
		d.phaseDone(s, PhaseBake, report.Interrupted, started, "stopped while baking")
		_, err = halt(ctx, s.Store, s.Record, s.Result, "baking", cause)
		return err
	}
	if err != nil {
		return err
	}
	if outcomeOf(ws) == report.Succeeded {
		d.phaseDone(s, PhaseBake, report.Succeeded, started, fmt.Sprintf("%s stayed healthy for %s", strings.Join(names, ", "), d.Bake))
		return nil
	}
	// The failed verdicts replace the rollout's: decide records them and runs the on-failure policy.
	for _, w := range ws {
		w.Images = imagesOf(s.Objects, w.Kind, w.Namespace, w.Name)
		replaceWorkload(s.Workloads, w)
		replaceWorkload(s.Result.Workloads, w)
	}
	s.Result.FinishedAt = time.Now()
	d.phaseDone(s, PhaseBake, report.Failed, started, summary(ws))
	return nil
}

// replaceWorkload puts w in place of the entry for the same workload of the rollout.
func replaceWorkload(ws []report.Workload, w report.Workload) {
	for i := range ws {
		if ws[i].Phase == "" && ws[i].Kind == w.Kind && ws[i].Namespace == w.Namespace && ws[i].Name == w.Name {
			ws[i] = w
		}
	}
}
