package action

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestPodDigest(t *testing.T) {
	const img = "registry.example.com/web:1.2.0"
	pod := func(image, id string) corev1.Pod {
		return corev1.Pod{
			Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}, {Name: "proxy", Image: "envoy:1"}}},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "web", ImageID: id}, {Name: "proxy", ImageID: "docker.io/library/envoy@sha256:" + hex('e')}}},
		}
	}
	a, b := "sha256:"+hex('a'), "sha256:"+hex('b')
	tests := []struct {
		name string
		pods []corev1.Pod
		want string
	}{
		{"all pods agree", []corev1.Pod{pod(img, "registry.example.com/web@"+a), pod(img, "docker-pullable://registry.example.com/web@"+a)}, a},
		{"pods of an older template are not asked", []corev1.Pod{pod(img, "registry.example.com/web@"+a), pod("registry.example.com/web:1.1.0", "registry.example.com/web@"+b)}, a},
		{"pods disagree: the tag moved mid-rollout", []corev1.Pod{pod(img, "registry.example.com/web@"+a), pod(img, "registry.example.com/web@"+b)}, ""},
		{"no report (a simulated kubelet)", []corev1.Pod{pod(img, "")}, ""},
		{"another repository's digest", []corev1.Pod{pod(img, "mirror.example.com/web@"+a)}, ""},
	}
	for _, tt := range tests {
		if got := podDigest(tt.pods, "web", img); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func hex(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
