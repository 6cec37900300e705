package image

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestIndexPerPlatform: a multi-platform build is an OCI index whose entries name their platform and
// whose images say the same in their configs, each non-root with rollguard as the entrypoint.
func TestIndexPerPlatform(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "rollguard")
	if err := os.WriteFile(bin, []byte("not really a binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	plats := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	var imgs []v1.Image
	for _, p := range plats {
		img, err := Build(Options{Binary: bin, Platform: p, Version: "v1.2.3"})
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	idx := Index(imgs, plats)
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 2 {
		t.Fatalf("%d manifests, want 2", len(m.Manifests))
	}
	for i, d := range m.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := img.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		if h, _, _ := v1.SHA256(bytes.NewReader(raw)); h != d.Digest {
			t.Errorf("entry %d: the manifest hashes to %s, the index says %s", i, h, d.Digest)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if d.Platform == nil || d.Platform.Architecture != plats[i].Architecture || cf.Architecture != plats[i].Architecture || cf.OS != "linux" {
			t.Errorf("entry %d: platform %v, config %s/%s; want %v", i, d.Platform, cf.OS, cf.Architecture, plats[i])
		}
		if cf.Config.User != "65532:65532" || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != Entrypoint {
			t.Errorf("entry %d: user %q entrypoint %v", i, cf.Config.User, cf.Config.Entrypoint)
		}
	}
}

// TestReproducible: the same binary makes the same image, so a rebuild of a release is verifiable.
func TestReproducible(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "rollguard")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	digest := func() v1.Hash {
		img, err := Build(Options{Binary: bin, Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Version: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if a, b := digest(), digest(); a != b {
		t.Errorf("two builds of one binary: %s and %s", a, b)
	}
}
