// Command rollguard-image builds rollguard's container image without a Docker daemon (`make image`): it
// cross-compiles a static rollguard for each platform, lays it into a one-layer non-root image
// (internal/image), writes a tarball that `docker load` or `podman load` reads, and pushes the image (a
// multi-platform index for several platforms) to a registry when given one.
//
//	go run ./cmd/rollguard-image --version v1.2.3 --out bin/rollguard-image.tar
//	go run ./cmd/rollguard-image --platform linux/amd64,linux/arm64 --push registry.example.com/rollguard:v1.2.3
//
// Pushing uses the Docker config's credentials ($DOCKER_CONFIG, ~/.docker/config.json), as docker push does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/rollguard/rollguard/internal/image"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rollguard-image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rollguard-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	platforms := fs.String("platform", "linux/"+runtime.GOARCH, "comma-separated OS/ARCH list; several make a multi-platform index (push only)")
	version := fs.String("version", "dev", "rollguard version stamped into the binary and the image's labels")
	out := fs.String("out", "", "write a docker-loadable tarball of the image to `FILE` (one platform)")
	push := fs.String("push", "", "push the image to `REF`, e.g. registry.example.com/team/rollguard:v1.2.3")
	tag := fs.String("tag", "rollguard:dev", "the image name written into --out's tarball")
	caCerts := fs.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to install in the image (empty: none)")
	source := fs.String("source", "https://github.com/rollguard/rollguard", "org.opencontainers.image.source label")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if *out == "" && *push == "" {
		return errors.New("nothing to do: give --out FILE and/or --push REF")
	}
	if *caCerts != "" {
		if _, err := os.Stat(*caCerts); err != nil {
			fmt.Fprintf(stderr, "rollguard-image: no CA bundle at %s; the image verifies TLS only with certificates given to it\n", *caCerts)
			*caCerts = ""
		}
	}
	var plats []v1.Platform
	for _, p := range strings.Split(*platforms, ",") {
		pl, err := v1.ParsePlatform(strings.TrimSpace(p))
		if err != nil || pl.OS == "" || pl.Architecture == "" {
			return fmt.Errorf("--platform %q: want OS/ARCH such as linux/amd64", p)
		}
		plats = append(plats, *pl)
	}
	if *out != "" && len(plats) > 1 {
		return errors.New("--out writes one platform's image; push a multi-platform index with --push")
	}

	dir, err := os.MkdirTemp("", "rollguard-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var imgs []v1.Image
	for _, p := range plats {
		bin := filepath.Join(dir, "rollguard-"+p.OS+"-"+p.Architecture)
		if err := compile(ctx, bin, p, *version, stderr); err != nil {
			return err
		}
		img, err := image.Build(image.Options{Binary: bin, Platform: p, Version: *version, Source: *source, CACerts: *caCerts})
		if err != nil {
			return fmt.Errorf("building the %s image: %w", p, err)
		}
		imgs = append(imgs, img)
	}

	if *out != "" {
		ref, err := name.ParseReference(*tag)
		if err != nil {
			return fmt.Errorf("--tag: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			return err
		}
		if err := tarball.WriteToFile(*out, ref, imgs[0]); err != nil {
			return fmt.Errorf("writing %s: %w", *out, err)
		}
		d, _ := imgs[0].Digest()
		fmt.Fprintf(stdout, "wrote %s (%s, %s): docker load -i %s\n", *out, *tag, d, *out)
	}
	if *push != "" {
		ref, err := name.ParseReference(*push)
		if err != nil {
			return fmt.Errorf("--push: %w", err)
		}
		opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
		var pushed interface{ Digest() (v1.Hash, error) }
		if len(imgs) == 1 {
			pushed, err = imgs[0], remote.Write(ref, imgs[0], opts...)
		} else {
			idx := image.Index(imgs, plats)
			pushed, err = idx, remote.WriteIndex(ref, idx, opts...)
		}
		if err != nil {
			return fmt.Errorf("pushing %s: %w", ref, err)
		}
		digest, err := pushed.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "pushed %s@%s\n", ref, digest)
	}
	return nil
}

// compile builds a static rollguard for one platform from this module's source.
func compile(ctx context.Context, out string, p v1.Platform, version string, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X github.com/rollguard/rollguard/internal/version.Version="+version,
		"-o", out, "./cmd/rollguard")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Variant != "" && p.Architecture == "arm" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("compiling rollguard for %s: %w", p, err)
	}
	return nil
}
