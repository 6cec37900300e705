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
	// ScenarioImagePullFailure: containers wait in ErrImagePull / ImagePullBackOff; events Warning Failed
	// `Failed to pull image "<image>": ...` and Normal BackOff `Back-off pulling image "<image>"`.
	ScenarioImagePullFailure = "image-pull-failure"
	// ScenarioCrashLoop: containers exit with code 1 about every 6 s; restartCount rises, waiting
	// CrashLoopBackOff, lastState.terminated.exitCode 1, event Warning BackOff "Back-off restarting failed container ...".
	ScenarioCrashLoop = "crash-loop"
	// ScenarioNeverReady: containers run but the pod never becomes Ready; event Warning Unhealthy
	// "Readiness probe failed: HTTP probe failed with statuscode: 503".
	ScenarioNeverReady = "never-ready"
	// ScenarioSlowReady: containers run and become Ready after ReadyAfterAnnotation (default 5s).
	ScenarioSlowReady = "slow-ready"
	// ScenarioConfigError: containers wait in CreateContainerConfigError `configmap "<name>" not found`
	// (name from MissingConfigMapAnnotation, default "app-config"); event Warning Failed "Error: configmap ... not found".
	ScenarioConfigError = "config-error"
	// ScenarioJobFailure: a Job's pod fails (phase Failed, exit code 1) instead of succeeding.
	ScenarioJobFailure = "job-failure"

	// Healthy-but-bumpy releases (stages/bumpy.yaml): each looks like a failure for a while, then turns healthy.

	// ScenarioPullBlip: the first pull fails with "dial tcp ...: i/o timeout", the kubelet backs off once
	// (ImagePullBackOff), and the next pull works after PullRecoversAfterAnnotation (default 5s); then ready.
	ScenarioPullBlip = "pull-blip"
	// ScenarioRestartOnce: the container exits with code 1 a second after starting, is restarted at once
	// (restartCount 1) and is ready 2 s later.
	ScenarioRestartOnce = "restart-once"
	// ScenarioEvicted: pods created before EvictBeforeAnnotation start and are evicted 1.5 s later, unready
	// (phase Failed, reason Evicted, condition DisruptionTarget); replacements created after it stay.
	ScenarioEvicted = "evicted"
)

// PullRecoversAfterAnnotation sets how long a ScenarioPullBlip pod backs off before its pull works (a Go
// duration, "5s").
const PullRecoversAfterAnnotation = "sandbox.rollguard.dev/pull-recovers-after"

// EvictBeforeAnnotation: ScenarioEvicted evicts the pods created before this time (RFC 3339, UTC).
const EvictBeforeAnnotation = "sandbox.rollguard.dev/evict-before"

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
