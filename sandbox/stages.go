package sandbox

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ScenarioLabel is the pod label that selects a failure scenario. Put it in a pod template: changing it
// creates a new ReplicaSet, exactly like a bad release.
const ScenarioLabel = "sandbox.rollguard.dev/scenario"

// Scenario values for ScenarioLabel.
const (
	// ScenarioImagePullFailure: the registry says the tag does not exist (containerd 2.x's "failed to resolve
	// image: <image>: not found"); containers wait in ErrImagePull / ImagePullBackOff and the kubelet retries
	// after 10 s, 20 s, 40 s, ...; events Normal Pulling, Warning Failed `Failed to pull image "<image>": ...`
	// and Normal BackOff `Back-off pulling image "<image>"`, counting every pull.
	ScenarioImagePullFailure = "image-pull-failure"
	// ScenarioCrashLoop: containers exit with code 1 a second after each start. As on a real node, the first
	// crash is restarted at once (restartCount 1); from the second on the kubelet backs off 10 s, 20 s, 40 s, ...
	// (waiting CrashLoopBackOff "back-off 10s restarting failed container=..."), lastState.terminated.exitCode 1,
	// events Normal Pulled/Created/Started per run and Warning BackOff "Back-off restarting failed container ...".
	ScenarioCrashLoop = "crash-loop"
	// ScenarioNeverReady: containers run but the pod never becomes Ready; events Warning Unhealthy, first the
	// kubelet's "connect: connection refused" (the app not listening yet), then "Readiness probe failed: HTTP
	// probe failed with statuscode: 503" every readinessProbe.periodSeconds (default 10), counted.
	ScenarioNeverReady = "never-ready"
	// ScenarioSlowReady: containers run and become Ready after ReadyAfterAnnotation (default 5s).
	ScenarioSlowReady = "slow-ready"
	// ScenarioConfigError: containers wait in CreateContainerConfigError `configmap "<name>" not found`
	// (name from MissingConfigMapAnnotation, default "app-config"); event Warning Failed "Error: configmap ... not found".
	ScenarioConfigError = "config-error"
	// ScenarioJobFailure: a Job's pod fails (phase Failed, exit code 1) instead of succeeding.
	ScenarioJobFailure = "job-failure"

	// ScenarioCrashLater: pods start ready like healthy ones; CrashAfterAnnotation (default 10s) later their
	// containers exit with code 1, the pods lose readiness and crash-loop (stages/bake.yaml): a release
	// that only fails after it rolled out, for the bake window.
	ScenarioCrashLater = "crash-later"
	// ScenarioReadyBlip: pods start ready; BlipAfterAnnotation (default 5s) later they are unready for 3s,
	// then ready for good (stages/bake.yaml): the bake window's counter-scenario.
	ScenarioReadyBlip = "ready-blip"

	// Healthy-but-bumpy releases (stages/bumpy.yaml): each looks like a failure for a while, then turns healthy.

	// ScenarioPullBlip: the first pull fails with "dial tcp ...: i/o timeout" and the kubelet backs off
	// (ImagePullBackOff); the registry answers again PullRecoversAfterAnnotation (default 5s) after the first
	// pull, and the kubelet's first retry after that (10 s, 30 s, 70 s, ... after the first pull) works.
	ScenarioPullBlip = "pull-blip"
	// ScenarioRestartOnce: the container exits with code 1 a second after starting, is restarted at once
	// (restartCount 1) and is ready 2 s later.
	ScenarioRestartOnce = "restart-once"
	// ScenarioEvicted: pods created before EvictBeforeAnnotation start and are evicted 1.5 s later, unready
	// (phase Failed, reason Evicted, condition DisruptionTarget); replacements created after it stay.
	ScenarioEvicted = "evicted"
)

// PullRecoversAfterAnnotation sets how long after its first pull a ScenarioPullBlip pod's registry answers
// again (a number with unit ms, s, m or h: "5s"); the pull works at the kubelet's next retry.
const PullRecoversAfterAnnotation = "sandbox.rollguard.dev/pull-recovers-after"

// EvictBeforeAnnotation: ScenarioEvicted evicts the pods created before this time (RFC 3339, UTC).
const EvictBeforeAnnotation = "sandbox.rollguard.dev/evict-before"

// CrashAfterAnnotation sets how long a ScenarioCrashLater pod runs ready before it crashes (a Go duration).
const CrashAfterAnnotation = "sandbox.rollguard.dev/crash-after"

// BlipAfterAnnotation sets how long a ScenarioReadyBlip pod is ready before its 3s blip (a Go duration).
const BlipAfterAnnotation = "sandbox.rollguard.dev/blip-after"

// ReadyAfterAnnotation sets how long a ScenarioSlowReady pod takes to become Ready (a Go duration, "5s").
const ReadyAfterAnnotation = "sandbox.rollguard.dev/ready-after"

// MissingConfigMapAnnotation names the ConfigMap a ScenarioConfigError pod reports as missing.
const MissingConfigMapAnnotation = "sandbox.rollguard.dev/missing-configmap"

//go:embed stages/*.yaml
var stageFiles embed.FS

// writeStages writes all stage files as one kwok configuration file and returns its path.
func writeStages(dir string) (string, error) {
	entries, err := stageFiles.ReadDir("stages")
	if err != nil {
		return "", fmt.Errorf("reading embedded stages: %w", err)
	}
	var docs []string
	for _, e := range entries {
		data, err := stageFiles.ReadFile("stages/" + e.Name())
		if err != nil {
			return "", fmt.Errorf("reading embedded stage %s: %w", e.Name(), err)
		}
		docs = append(docs, strings.TrimSpace(string(data)))
	}
	p := filepath.Join(dir, "stages.yaml")
	if err := os.WriteFile(p, []byte(strings.Join(docs, "\n---\n")+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("writing %s: %w", p, err)
	}
	return p, nil
}
