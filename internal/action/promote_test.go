package action

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestPinImage(t *testing.T) {
	cases := []struct{ image, digest, want string }{
		{"registry.example.com/web:1.4.2", digestA, "registry.example.com/web:1.4.2@" + digestA},
		{"127.0.0.1:5000/web:1.0.0", digestA, "127.0.0.1:5000/web:1.0.0@" + digestA},
		{"registry.example.com/web@" + digestA, digestA, "registry.example.com/web@" + digestA},
		{"registry.example.com/web:1.4.2@" + digestA, digestB, "registry.example.com/web:1.4.2@" + digestB},
		{"nginx", digestA, "nginx@" + digestA},
	}
	for _, tc := range cases {
		got, err := pinImage(tc.image, tc.digest)
		if err != nil || got != tc.want {
			t.Errorf("pinImage(%s) = %s, %v; want %s", tc.image, got, err, tc.want)
		}
	}
	if _, err := pinImage("Not A Ref", digestA); err == nil {
		t.Error("an invalid reference was pinned")
	}
}

func pod(image, imageID string, ready, deleting bool) corev1.Pod {
	p := corev1.Pod{
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}},
		Status: corev1.PodStatus{
			ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Image: image, ImageID: imageID}},
		},
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	if deleting {
		now := metav1.Now()
		p.DeletionTimestamp = &now
	}
	return p
}

func TestPodDigests(t *testing.T) {
	const img = "registry.example.com/web:1.4.2"
	cases := []struct {
		name string
		pods []corev1.Pod
		want string
	}{
		{"containerd repo digest", []corev1.Pod{pod(img, "registry.example.com/web@"+digestA, true, false)}, digestA},
		{"docker-pullable", []corev1.Pod{pod(img, "docker-pullable://registry.example.com/web@"+digestA, true, false)}, digestA},
		{"local image id is not a digest", []corev1.Pod{pod(img, digestA, true, false)}, ""},
		{"kwok reports none", []corev1.Pod{pod(img, "", true, false)}, ""},
		{"not ready ignored", []corev1.Pod{pod(img, "r/web@"+digestB, false, false), pod(img, "r/web@"+digestA, true, false)}, digestA},
		{"terminating ignored", []corev1.Pod{pod(img, "r/web@"+digestB, true, true), pod(img, "r/web@"+digestA, true, false)}, digestA},
		{"old template ignored", []corev1.Pod{pod("registry.example.com/web:1.4.1", "r/web@"+digestB, true, false), pod(img, "r/web@"+digestA, true, false)}, digestA},
		{"tag moved between pods", []corev1.Pod{pod(img, "r/web@"+digestB, true, false), pod(img, "r/web@"+digestA, true, false)}, digestA + "," + digestB},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(podDigests(tc.pods, "web", img), ","); got != tc.want {
				t.Errorf("podDigests = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDrift(t *testing.T) {
	state := func(name string, images ...RunningImage) EnvState {
		return EnvState{Name: name, Release: "web.v1", Workloads: []EnvWorkload{{Kind: "Deployment", Name: "web", Images: images}}}
	}
	same := drift(state("staging", RunningImage{Container: "web", Image: "r/web:1@" + digestA, Digest: digestA}),
		state("dev", RunningImage{Container: "web", Image: "r/web:1", Digest: digestA}))
	if len(same) != 0 {
		t.Errorf("same digest, different references: drift %q", same)
	}
	diff := drift(state("staging", RunningImage{Container: "web", Digest: digestA}, RunningImage{Container: "sidecar", Image: "r/proxy:2"}),
		state("dev", RunningImage{Container: "web", Digest: digestB}, RunningImage{Container: "init", Image: "r/init:1"}))
	want := []string{
		"Deployment/web web: sha256:aaaaaaaaaaaa here, sha256:bbbbbbbbbbbb in dev",
		"Deployment/web sidecar: not in dev",
		"Deployment/web init: only in dev",
	}
	if strings.Join(diff, "\n") != strings.Join(want, "\n") {
		t.Errorf("drift:\n%s\nwant:\n%s", strings.Join(diff, "\n"), strings.Join(want, "\n"))
	}
}
