package e2e

// Real scenarios: rollguard against a real kubelet, containerd and runc (the sandbox's real node, named
// "localhost"), pulling the test app (sandbox/images/testapp) from a local registry. The kwok scenarios
// elsewhere in this package imitate these failures; here the kubelet produces them.

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/rollguard/rollguard/sandbox"
)

var (
	realOnce    sync.Once
	realCluster *sandbox.Cluster
	realDir     string
	realErr     error
)

// realNode returns the package's one real-node sandbox, started by the first test that needs it and
// stopped by TestMain. A host that cannot run it fails the test naming what is missing (CI=true), or
// skips with that message elsewhere.
func realNode(t *testing.T) *sandbox.Cluster {
	t.Helper()
	if err := sandbox.RealNodeSupported(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	realOnce.Do(func() {
		if realDir, realErr = os.MkdirTemp("", "rollguard-realnode-"); realErr == nil {
			realCluster, realErr = sandbox.Start(context.Background(), sandbox.Options{Dir: realDir, RealNode: true, Nodes: 1, Progress: os.Stderr})
		}
	})
	if realErr != nil {
		t.Fatal(realErr)
	}
	return realCluster
}

// stopRealNode stops the real node; its folder (kubelet, containerd, registry logs) is kept when tests failed.
func stopRealNode(code int) {
	if realCluster != nil {
		if err := realCluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if realDir == "" {
		return
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "real node: logs kept in %s/logs\n", realDir)
		return
	}
	_ = os.RemoveAll(realDir)
}

// realApp is a Deployment of the test app on the real node.
type realApp struct {
	image    string
	env      map[string]string
	memory   string // limit, e.g. "64Mi"
	probe    int32  // readiness probe failureThreshold (period 1 s); 0: no probe
	envFrom  *corev1.ConfigMapKeySelector
	fileFrom string // a ConfigMap mounted at /etc/app, CONFIG_FILE=/etc/app/config
	state    bool   // an emptyDir at /state, which survives container restarts (CRASH_ONCE's marker)
}

func (a realApp) yaml(t *testing.T) string {
	t.Helper()
	two := int32(2)
	c := corev1.Container{Name: "web", Image: a.image, Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}
	for _, k := range slices.Sorted(maps.Keys(a.env)) {
		c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: a.env[k]})
	}
	if a.envFrom != nil {
		c.Env = append(c.Env, corev1.EnvVar{Name: "SETTING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: a.envFrom}})
	}
	if a.memory != "" {
		q := resource.MustParse(a.memory)
		c.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: q}, Requests: corev1.ResourceList{corev1.ResourceMemory: q}}
	}
	if a.probe > 0 {
		c.ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1, FailureThreshold: a.probe,
		}
	}
	spec := corev1.PodSpec{NodeSelector: sandbox.RealNodeSelector(), TerminationGracePeriodSeconds: new(int64)}
	if a.fileFrom != "" {
		c.Env = append(c.Env, corev1.EnvVar{Name: "CONFIG_FILE", Value: "/etc/app/config"})
		c.VolumeMounts = []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}}
		spec.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: a.fileFrom}}}}}
	}
	if a.state {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "state", MountPath: "/state"})
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "state", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	spec.Containers = []corev1.Container{c}
	labels := map[string]string{"app": "web"}
	d := appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &two,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}
	out, err := yaml.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

const configMap = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  config: \"greeting: hello\"\n---\n"

// realDeploy runs rollguard deploy against the real-node sandbox and returns its result.
func realDeploy(t *testing.T, rc *sandbox.Cluster, ns, manifest string, extra ...string) result {
	t.Helper()
	args := append([]string{"deploy", "-f", "-", "-n", ns, "-o", "json", "--timeout", "3m"}, extra...)
	return rollguardEnv(t, []string{"KUBECONFIG=" + rc.Kubeconfig}, manifest, args...)
}

// pushApp pushes the test app under a tag unique to the test, so each release is a new pull.
func pushApp(t *testing.T, rc *sandbox.Cluster, tag string) string {
	t.Helper()
	ref, err := rc.PushTestApp(context.Background(), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))+"-"+tag)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// realV1 deploys a healthy first release with rollguard and returns its image.
func realV1(t *testing.T, rc *sandbox.Cluster, ns string) string {
	t.Helper()
	img := pushApp(t, rc, "v1")
	r := realDeploy(t, rc, ns, configMap+realApp{image: img, probe: 3, fileFrom: "web-config"}.yaml(t))
	if r.code != 0 {
		t.Fatalf("v1: exit %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	return img
}

// wantFailure checks a report names one failed workload with reason, and that message and evidence carry
// the given fragments.
func wantFailure(t *testing.T, r result, code int, reason, message, evidence string) report {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\n%s\n%s", r.code, code, r.stdout, r.stderr)
	}
	rep := parseReport(t, r)
	if len(rep.Workloads) != 1 {
		t.Fatalf("report = %+v, want one workload", rep)
	}
	w := rep.Workloads[0]
	if w.Status != "failed" || w.Reason != reason {
		t.Fatalf("status %q reason %q (%s), want failed %s\n%s", w.Status, w.Reason, w.Message, reason, r.stdout)
	}
	if !strings.Contains(w.Message, message) {
		t.Errorf("message %q lacks %q", w.Message, message)
	}
	var all []string
	for _, e := range w.Evidence {
		all = append(all, e.Object+": "+e.Text)
	}
	if !strings.Contains(strings.Join(all, "\n"), evidence) {
		t.Errorf("evidence lacks %q:\n%s", evidence, strings.Join(all, "\n"))
	}
	return rep
}

// crashed stands for wantCrash's two acceptable verdicts in a table of reasons.
const crashed = "CrashLoop or its late report"

// wantCrash checks a report names a container that crashed at start with line. The kubelet reports the
// crash as CrashLoop, unless the container runtime is slow to handle the exit: containerd keeps a
// container "running" until its shim is cleaned up, which a starved machine (load 20+ on 2 cores) has
// dragged out to 10 s, past the readiness wait. Then the verdict is ReadinessFailed, and the crash's own
// line must reach the report as the container's output, so either way the user reads why it failed.
func wantCrash(t *testing.T, r result, code int, line string) {
	t.Helper()
	if rep := parseReport(t, r); len(rep.Workloads) == 1 && rep.Workloads[0].Reason == "ReadinessFailed" {
		t.Logf("the runtime reported the exit late: %s", rep.Workloads[0].Message)
		wantFailure(t, r, code, "ReadinessFailed", "last output line: \""+line, "container web output: "+line)
		return
	}
	wantFailure(t, r, code, "CrashLoop", "code 1", line)
}

// TestRealNodeFailures deploys a healthy v1, then a broken v2, on the real node; rollguard must name the
// kubelet's own failure with its reason and evidence.
func TestRealNodeFailures(t *testing.T) {
	rc := realNode(t)
	crashLine := "fatal: cannot reach database db:5432: connection refused"
	missingKey := &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}, Key: "database-url"}
	cases := []struct {
		name                      string
		v2                        func(pushed string) realApp
		reason, message, evidence string
	}{
		{"missing image", func(string) realApp { return realApp{image: rc.ImageRef(sandbox.TestApp, "never-pushed"), probe: 3} },
			"ImagePullFailed", "never-pushed", "not found"},
		{"crash loop", func(img string) realApp {
			return realApp{image: img, probe: 3, env: map[string]string{"CRASH_AT_START": crashLine}}
		}, crashed, "", crashLine},
		{"never ready", func(img string) realApp {
			return realApp{image: img, probe: 2, env: map[string]string{"NEVER_READY": "1"}}
		},
			"ReadinessFailed", "ready", "Readiness probe failed: HTTP probe failed with statuscode: 503"},
		{"missing ConfigMap key", func(img string) realApp { return realApp{image: img, probe: 3, envFrom: missingKey} },
			"ConfigError", "database-url", "CreateContainerConfigError"},
		// It loads its data before it serves ready, like an app warming a cache: OOM-killed before ready, every time.
		{"OOMKilled", func(img string) realApp {
			return realApp{image: img, probe: 3, memory: "48Mi", env: map[string]string{"ALLOCATE_MB_PER_S": "200", "READY_AFTER": "30s"}}
		}, "CrashLoop", "OOMKilled", "OOMKilled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := rc.Namespace(t)
			realV1(t, rc, ns)
			v2 := tc.v2(pushApp(t, rc, "v2"))
			r := realDeploy(t, rc, ns, v2.yaml(t), "--on-failure", "none")
			if tc.reason == crashed {
				wantCrash(t, r, 2, tc.evidence)
				return
			}
			wantFailure(t, r, 2, tc.reason, tc.message, tc.evidence)
		})
	}
}

// TestRealNodeHeal is the whole heal path on real pods: a crashing release is rolled back and the
// restored release runs Ready.
func TestRealNodeHeal(t *testing.T) {
	rc := realNode(t)
	t.Parallel()
	ns := rc.Namespace(t)
	v1 := realV1(t, rc, ns)
	crashLine := "fatal: missing setting DATABASE_URL"
	v2 := realApp{image: pushApp(t, rc, "v2"), probe: 3, env: map[string]string{"CRASH_AT_START": crashLine}}
	r := realDeploy(t, rc, ns, v2.yaml(t))
	wantCrash(t, r, 1, crashLine)
	var rep struct {
		Outcome  string `json:"outcome"`
		Rollback struct {
			Outcome string `json:"outcome"`
		} `json:"rollback"`
	}
	if err := jsonUnmarshal(r.stdout, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != "rolled_back" || rep.Rollback.Outcome != "succeeded" {
		t.Fatalf("outcome %q, rollback %q; want rolled_back, rollback succeeded\n%s", rep.Outcome, rep.Rollback.Outcome, r.stdout)
	}
	ctx := context.Background()
	pods, err := rc.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	ready := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Spec.Containers[0].Image == v1 && p.Spec.NodeName == sandbox.RealNodeName && podIsReady(&p) {
			ready++
		}
	}
	if ready != 2 {
		t.Errorf("%d pods of v1 Ready on the real node after the rollback, want 2", ready)
	}
}

func podIsReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
