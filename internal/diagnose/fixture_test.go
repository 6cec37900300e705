package diagnose

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// A fixture is a folder testdata/<case>/ holding objects.yaml (the workload, its ReplicaSets, pods and events
// as a multi-document YAML) and case.yaml (where the objects come from and when the rollout started and the
// objects were read).
type fixture struct {
	in       Input
	started  time.Time
	captured time.Time
}

// caseMeta is case.yaml.
type caseMeta struct {
	// Source is "sandbox" for objects captured by capture_test.go, "hand-written" otherwise.
	Source   string      `json:"source"`
	Started  metav1.Time `json:"started"`
	Captured metav1.Time `json:"captured"`
}

func loadFixture(t *testing.T, dir string) fixture {
	t.Helper()
	var meta caseMeta
	raw, err := os.ReadFile(filepath.Join(dir, "case.yaml"))
	if err != nil {
		t.Fatalf("reading case: %v", err)
	}
	if err := yaml.UnmarshalStrict(raw, &meta); err != nil {
		t.Fatalf("decoding %s/case.yaml: %v", dir, err)
	}
	in, err := readObjects(filepath.Join(dir, "objects.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	in.Started = meta.Started.Time
	return fixture{in: in, started: meta.Started.Time, captured: meta.Captured.Time}
}

// readObjects decodes a multi-document YAML of workloads, ReplicaSets, pods and events, strictly, so a typo in
// a hand-written fixture fails instead of silently dropping a field.
func readObjects(path string) (Input, error) {
	var in Input
	raw, err := os.ReadFile(path)
	if err != nil {
		return in, fmt.Errorf("reading fixture: %w", err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return in, fmt.Errorf("reading %s: %w", path, err)
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return in, fmt.Errorf("decoding %s: %w", path, err)
		}
		var obj any
		switch tm.Kind {
		case "":
			continue // comment-only document
		case "Deployment":
			obj = &appsv1.Deployment{}
		case "StatefulSet":
			obj = &appsv1.StatefulSet{}
		case "DaemonSet":
			obj = &appsv1.DaemonSet{}
		case "Job":
			obj = &batchv1.Job{}
		case "ReplicaSet":
			obj = &appsv1.ReplicaSet{}
		case "Pod":
			obj = &corev1.Pod{}
		case "Event":
			obj = &corev1.Event{}
		default:
			return in, fmt.Errorf("%s: unexpected kind %q", path, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return in, fmt.Errorf("decoding %s %s: %w", tm.Kind, path, err)
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			in.Workload = o
		case *appsv1.StatefulSet:
			in.Workload = o
		case *appsv1.DaemonSet:
			in.Workload = o
		case *batchv1.Job:
			in.Workload = o
		case *appsv1.ReplicaSet:
			in.ReplicaSets = append(in.ReplicaSets, *o)
		case *corev1.Pod:
			in.Pods = append(in.Pods, *o)
		case *corev1.Event:
			in.Events = append(in.Events, *o)
		}
	}
	if in.Workload == nil {
		return in, fmt.Errorf("%s holds no Deployment, StatefulSet, DaemonSet or Job", path)
	}
	return in, nil
}
