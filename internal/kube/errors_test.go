package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/exitcode"
)

func get(err error) error { return &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/api", Err: err} }

func TestClassify(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	cases := []struct {
		name     string
		err      error
		code     int
		mentions string
		// is must still be true of the classified error: callers test the original.
		is func(error) bool
	}{
		{"forbidden is bad input", apierrors.NewForbidden(pods, "web", errors.New("no")), exitcode.BadInput, "forbidden", apierrors.IsForbidden},
		{"unauthorized is unreachable", apierrors.NewUnauthorized("expired"), exitcode.Unreachable, "401", apierrors.IsUnauthorized},
		{"not found is bad input", apierrors.NewNotFound(pods, "web"), exitcode.BadInput, "not found", apierrors.IsNotFound},
		{"refused is unreachable", get(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), exitcode.Unreachable, "cannot reach",
			func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }},
		{"a cut connection is unreachable", get(io.EOF), exitcode.Unreachable, "cannot reach", func(err error) bool { return errors.Is(err, io.EOF) }},
		{"a request deadline is unreachable", get(context.DeadlineExceeded), exitcode.Unreachable, "cannot reach",
			func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
		// Ctrl-C during a request: client-go returns the cancellation inside a *url.Error.
		{"cancelled is not unreachable", get(context.Canceled), exitcode.NotRecovered, "context canceled",
			func(err error) bool { return errors.Is(err, context.Canceled) }},
		{"an unknown error keeps its cause", errors.New("something odd"), exitcode.NotRecovered, "something odd", nil},
		// The API server answered: a webhook it must call is down. Not "cannot reach the cluster".
		{"an uncallable webhook names the webhook", apierrors.NewInternalError(errors.New(`failed calling webhook "policy.example.com": failed to call webhook: Post "https://policy.svc:443/validate?timeout=10s": dial tcp 10.0.0.9:443: connect: connection refused`)),
			exitcode.BadInput, `admission webhook "policy.example.com": Post`, apierrors.IsInternalError},
		{"an answer quoting a refused connection is not unreachable", apierrors.NewInternalError(errors.New("etcd: dial tcp 10.0.0.5:2379: connect: connection refused")),
			exitcode.NotRecovered, "connection refused", apierrors.IsInternalError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Classify(fmt.Errorf("wrapped: %w", tc.err), "reading Deployment/web", "https://10.0.0.1:6443")
			if got := exitcode.Of(err); got != tc.code {
				t.Errorf("exit %d, want %d: %v", got, tc.code, err)
			}
			if !strings.Contains(err.Error(), tc.mentions) || !strings.HasPrefix(err.Error(), "reading Deployment/web") {
				t.Errorf("message %q: want it to start with what was done and mention %q", err, tc.mentions)
			}
			if tc.is != nil && !tc.is(err) {
				t.Errorf("the original error is no longer wrapped: %#v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message is not one line: %q", err)
			}
		})
	}
}

// A classified error is classified once: wrapping it again keeps its code and message.
func TestClassifyKeepsACode(t *testing.T) {
	first := Classify(apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "x", errors.New("no")), "listing pods", "s")
	if again := Classify(first, "other", "s"); again != first {
		t.Errorf("re-classified: %v", again)
	}
}
