// Package registrytest runs a real OCI distribution registry (Debian's docker-registry, i.e.
// github.com/distribution/distribution) on loopback for tests, with deletes enabled, and pushes generated images
// to it with go-containerregistry.
package registrytest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rollguard/rollguard/sandbox"
)

// BinaryEnv names the environment variable that points at a registry binary, overriding the PATH lookup.
const BinaryEnv = sandbox.RegistryBinaryEnv

// Binary finds the registry server binary the way the sandbox's real node does: $ROLLGUARD_REGISTRY_BIN, else
// docker-registry (Debian) or registry (distribution's own name) on PATH.
func Binary() (string, error) {
	p, err := sandbox.RegistryBinary()
	if err != nil {
		return "", fmt.Errorf("no registry server binary (%v): run .ci/registry.sh (installs Debian's docker-registry: apt-get install docker-registry) or set %s", err, BinaryEnv)
	}
	return p, nil
}

// Server is a running registry.
type Server struct {
	// Host is host:port on loopback, e.g. 127.0.0.1:40123 (go-containerregistry speaks plain HTTP to loopback).
	Host string
	// Dir holds the registry's storage.
	Dir string
}

// Option configures a test registry.
type Option func(*options)

type options struct {
	htpasswd string // "user:bcrypt-hash"
}

// WithBasicAuth makes the registry demand HTTP basic auth (distribution's htpasswd) for user, whose password
// hashes to bcryptHash.
func WithBasicAuth(user, bcryptHash string) Option {
	return func(o *options) { o.htpasswd = user + ":" + bcryptHash }
}

// Start runs a registry for the test and stops it at cleanup. A missing binary fails the test (it does not
// skip: the registry is a real part these tests exist to exercise).
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	auth := ""
	if o.htpasswd != "" {
		path := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(path, []byte(o.htpasswd+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: rollguard-test\n    path: %s\n", path)
	}
	var lastErr error
	// A free port is found by listening and closing; another process may grab it before the registry binds,
	// so try a few ports.
	for range 5 {
		s, err := start(t, bin, dir, auth)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("starting registry %s: %v", bin, lastErr)
	return nil
}

func start(t testing.TB, bin, dir, auth string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	host := l.Addr().String()
	l.Close()

	storage := filepath.Join(dir, "storage")
	config := sandbox.RegistryConfig(storage, host, auth)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "registry.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			return false, fmt.Errorf("registry exited (%v): %s", err, log)
		default:
		}
		resp, err := http.Get("http://" + host + "/v2/")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		// 401 is a ready registry that wants credentials.
		return resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized, nil
	})
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return &Server{Host: host, Dir: dir}, nil
}

// Repo returns a repository on this server.
func (s *Server) Repo(t testing.TB, path string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s.Host + "/" + path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Image builds a small distinct image whose config says it was created at created (the time the registry
// client reads as "pushed", since the distribution API has no push time). Layers make it unique.
func Image(t testing.TB, created time.Time) v1.Image {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: created}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Index wraps images into a multi-platform index.
func Index(t testing.TB, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for i, img := range imgs {
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "linux", Architecture: []string{"amd64", "arm64", "s390x"}[i%3]},
		}})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}

// keychain lets pushes use the credentials a test put in $DOCKER_CONFIG.
var keychain = remote.WithAuthFromKeychain(authn.DefaultKeychain)

// Push writes img under each tag (or by digest only when no tag is given) and returns its digest.
func Push(t testing.TB, repo name.Repository, img v1.Image, tags ...string) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) == 0 {
		if err := remote.Write(repo.Digest(d.String()), img, keychain); err != nil {
			t.Fatalf("pushing %s@%s: %v", repo, d, err)
		}
		return d
	}
	for _, tag := range tags {
		if err := remote.Write(repo.Tag(tag), img, keychain); err != nil {
			t.Fatalf("pushing %s:%s: %v", repo, tag, err)
		}
	}
	return d
}

// PushIndex writes an index under each tag and returns its digest.
func PushIndex(t testing.TB, repo name.Repository, idx v1.ImageIndex, tags ...string) v1.Hash {
	t.Helper()
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if err := remote.WriteIndex(repo.Tag(tag), idx, keychain); err != nil {
			t.Fatalf("pushing index %s:%s: %v", repo, tag, err)
		}
	}
	return d
}
