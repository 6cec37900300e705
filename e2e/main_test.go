// Package e2e runs the rollguard binary against the sandbox cluster: a real kube-apiserver,
// kube-controller-manager, kube-scheduler and etcd, with kwok playing the kubelet.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/sandbox"
)

var (
	cluster *sandbox.Cluster
	binary  string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "rollguard-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "rollguard")
	build := exec.Command("go", "build", "-o", binary, "../cmd/rollguard")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building rollguard:", err)
		return 1
	}
	cluster, err = sandbox.Start(ctx, sandbox.Options{Progress: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cluster.Stop()
	code := m.Run()
	stopRealNode(code)   // started by the first real-node test (realnode_test.go)
	stopGrowingCluster() // started by the first autoscaler test (autoscaler_test.go)
	return code
}

// result is what one rollguard run produced.
type result struct {
	code   int
	stdout string
	stderr string
}

// rollguard runs the binary against the sandbox with the given arguments and standard input.
func rollguard(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return rollguardEnv(t, []string{"KUBECONFIG=" + cluster.Kubeconfig}, stdin, args...)
}

func rollguardEnv(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	// A clean environment: CI variables of the machine running the tests must not leak into change causes.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("running rollguard %v: %v", args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// report is the subset of `-o json` the tests check.
type report struct {
	Outcome    string `json:"outcome"`
	AppliedAt  string `json:"appliedAt"`
	FinishedAt string `json:"finishedAt"`
	Workloads  []struct {
		Kind       string `json:"kind"`
		Namespace  string `json:"namespace"`
		Name       string `json:"name"`
		Status     string `json:"status"`
		Reason     string `json:"reason"`
		Message    string `json:"message"`
		DetectedAt string `json:"detectedAt"`
		Fix        string `json:"fix"`
		Evidence   []struct {
			Object string `json:"object"`
			Text   string `json:"text"`
		} `json:"evidence"`
	} `json:"workloads"`
}

func parseReport(t *testing.T, r result) report {
	t.Helper()
	var rep report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\nstdout:\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
	return rep
}

// writeFile writes content into a file in a fresh temp folder and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// startRollguardEnv runs rollguard in the background with the given environment; the returned func waits.
func startRollguardEnv(t *testing.T, env []string, stdin string, args ...string) func() result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"HOME=" + t.TempDir()}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() {
		err := cmd.Wait()
		code := 0
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			code = exitErr.ExitCode()
		}
		done <- result{code: code, stdout: out.String(), stderr: errb.String()}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return func() result {
		select {
		case r := <-done:
			return r
		case <-time.After(5 * time.Minute):
			t.Fatalf("rollguard %v did not finish", args)
			return result{}
		}
	}
}
