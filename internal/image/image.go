// Package image builds rollguard's container image without a Docker daemon: one layer holding the static
// rollguard binary, a passwd entry for an unprivileged user, a writable home and /tmp, and (when given) the
// CA bundle registries and clusters are verified with, on an empty base. The image runs as that user, its
// entrypoint is rollguard, and its default arguments are `version`; CI runners and the in-cluster guard
// pass their own arguments.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// Entrypoint is where the binary lives in the image.
	Entrypoint = "/usr/local/bin/rollguard"
	// UID and GID of the unprivileged user the image runs as (the "nonroot" of distroless images).
	UID = 65532
	GID = 65532
	// Home of that user, also the working directory: client-go caches discovery under $HOME/.kube.
	Home = "/home/nonroot"
)

// Options describe one platform's image.
type Options struct {
	// Binary is the path of a statically linked rollguard built for Platform.
	Binary   string
	Platform v1.Platform
	// Version goes into the org.opencontainers.image.version label.
	Version string
	// Source is the org.opencontainers.image.source label (the repository's URL); optional.
	Source string
	// CACerts is a PEM bundle installed as /etc/ssl/certs/ca-certificates.crt; optional.
	CACerts string
	// Created is the image's creation time; zero keeps builds reproducible (the Unix epoch).
	Created time.Time
}

// Build returns the image for one platform.
func Build(o Options) (v1.Image, error) {
	if o.Created.IsZero() {
		o.Created = time.Unix(0, 0).UTC()
	}
	layer, err := rootfs(o)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, fmt.Errorf("adding the layer: %w", err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = o.Platform.OS, o.Platform.Architecture, o.Platform.Variant
	cf.Created = v1.Time{Time: o.Created}
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, GID),
		Entrypoint: []string{Entrypoint},
		Cmd:        []string{"version"},
		WorkingDir: Home,
		Env: []string{
			"PATH=/usr/local/bin:/usr/bin:/bin",
			"HOME=" + Home,
			"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
		},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "rollguard",
			"org.opencontainers.image.description": "Self-healing Kubernetes deployments",
			"org.opencontainers.image.version":     o.Version,
		},
	}
	if o.Source != "" {
		cf.Config.Labels["org.opencontainers.image.source"] = o.Source
	}
	if o.CACerts == "" {
		cf.Config.Env = cf.Config.Env[:2]
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("writing the image config: %w", err)
	}
	return img, nil
}

// Index bundles images, one per platform, into a multi-platform index.
func Index(imgs []v1.Image, platforms []v1.Platform) v1.ImageIndex {
	var adds []mutate.IndexAddendum
	for i, img := range imgs {
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &platforms[i]}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
}

type entry struct {
	name string
	mode int64
	uid  int
	body []byte // nil for a directory
}

// rootfs is the image's only layer.
func rootfs(o Options) (v1.Layer, error) {
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("reading the rollguard binary: %w", err)
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:%s:/sbin/nologin\n", UID, GID, Home)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID)
	entries := []entry{
		{name: "etc/", mode: 0o755},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "home/", mode: 0o755},
		{name: Home[1:] + "/", mode: 0o700, uid: UID},
		{name: "tmp/", mode: 0o1777},
		{name: "usr/", mode: 0o755},
		{name: "usr/local/", mode: 0o755},
		{name: "usr/local/bin/", mode: 0o755},
		{name: Entrypoint[1:], mode: 0o755, body: bin},
	}
	if o.CACerts != "" {
		ca, err := os.ReadFile(o.CACerts)
		if err != nil {
			return nil, fmt.Errorf("reading the CA bundle: %w", err)
		}
		entries = append(entries,
			entry{name: "etc/ssl/", mode: 0o755}, entry{name: "etc/ssl/certs/", mode: 0o755},
			entry{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, body: ca})
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: o.Created, Format: tar.FormatPAX}
		if e.body == nil {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
