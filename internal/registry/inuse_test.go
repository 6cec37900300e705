package registry

import (
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
)

func TestClusterImagesResolveInRepository(t *testing.T) {
	repo, err := name.NewRepository("registry.example.com/team/web")
	if err != nil {
		t.Fatal(err)
	}
	const (
		d1     = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
		d2     = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
		child  = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
		index  = "sha256:4444444444444444444444444444444444444444444444444444444444444444"
		latest = "sha256:5555555555555555555555555555555555555555555555555555555555555555"
	)
	listing := &Repository{
		Name:    repo,
		Tags:    map[string]string{"1.0.1": d1, "1.0.2": d2, "multi": index, "latest": latest, "nginx": d2},
		Parents: map[string]string{child: index},
	}
	spec := &corev1.PodSpec{
		InitContainers: []corev1.Container{{Image: "registry.example.com/team/web:1.0.1"}},
		Containers: []corev1.Container{
			{Image: "nginx"}, // docker.io/library/nginx, never the tag "nginx" of team/web
			{Image: "registry.example.com/team/web@" + child},
			{Image: "registry.example.com/team/other:1.0.2"},
			{Image: "not a reference"},
		},
	}
	status := &corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{
		{ImageID: "docker-pullable://registry.example.com/team/web@" + d2},
		{ImageID: "sha256:" + "9999999999999999999999999999999999999999999999999999999999999999"}, // local ID
	}}
	ps := append(PodSpecImages("spec", spec), PodStatusImages("status", status)...)
	got, notes := resolveProtections(listing, ps)
	var digests []string
	for _, p := range got {
		digests = append(digests, p.Digest+" "+p.Why)
	}
	want := []string{d1 + " spec", index + " spec", d2 + " status"}
	if !slices.Equal(digests, want) {
		t.Errorf("protected %v, want %v", digests, want)
	}
	if len(notes) != 0 {
		t.Errorf("cluster images of other repositories produced notes: %v", notes)
	}
}
