package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/rollguard/rollguard/internal/image"
	"github.com/rollguard/rollguard/internal/registry/registrytest"
)

// TestMakeImagePushes runs `make image` with a registry on the command line (a real distribution registry
// on loopback), reads the pushed image back and checks what a runtime would run: a non-root user with a
// passwd entry, rollguard as the entrypoint, and that entrypoint, taken out of the image's layer and run
// with `version`, printing the version make stamped in.
func TestMakeImagePushes(t *testing.T) {
	reg := registrytest.Start(t)
	ref := reg.Host + "/team/rollguard:v0.0.0-test"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "rollguard-image.tar")
	cmd := exec.CommandContext(ctx, "make", "-C", root, "--no-print-directory", "image", "IMAGE="+ref, "VERSION=v0.0.0-test")
	// Only the push is under test: keep make's tarball out of the working tree.
	cmd.Env = append(os.Environ(), "MAKEFLAGS=")
	cmd.Args = append(cmd.Args, "IMAGE_OUT="+out)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make image: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "pushed "+ref+"@sha256:") {
		t.Errorf("make image did not report the push:\n%s", b)
	}

	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("reading back %s: %v", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if u := cf.Config.User; u == "" || u == "0" || u == "root" || strings.HasPrefix(u, "0:") {
		t.Errorf("user %q: the image must run as a non-root user", u)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != image.Entrypoint {
		t.Errorf("entrypoint %q, want %s", got, image.Entrypoint)
	}
	if cf.OS != "linux" || cf.Config.Labels["org.opencontainers.image.version"] != "v0.0.0-test" {
		t.Errorf("os %q, version label %q", cf.OS, cf.Config.Labels["org.opencontainers.image.version"])
	}

	files := layerFiles(t, img)
	if !strings.Contains(string(files["etc/passwd"]), ":65532:65532:") || cf.Config.User != "65532:65532" {
		t.Errorf("user %s has no passwd entry:\n%s", cf.Config.User, files["etc/passwd"])
	}
	bin := filepath.Join(t.TempDir(), "rollguard")
	if err := os.WriteFile(bin, files[strings.TrimPrefix(image.Entrypoint, "/")], 0o755); err != nil {
		t.Fatal(err)
	}
	v, err := exec.CommandContext(ctx, bin, cf.Config.Cmd...).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(v), "rollguard v0.0.0-test") || strings.Join(cf.Config.Cmd, " ") != "version" {
		t.Errorf("the entrypoint with the default arguments %v printed %q (%v); want rollguard v0.0.0-test", cf.Config.Cmd, v, err)
	}
}

// layerFiles reads the regular files of the image's flattened filesystem.
func layerFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			var b bytes.Buffer
			if _, err := io.Copy(&b, tr); err != nil {
				t.Fatal(err)
			}
			files[strings.TrimPrefix(h.Name, "/")] = b.Bytes()
		}
	}
}
