package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rollguard/rollguard/internal/exitcode"
)

// Serve listens on addr and serves the dashboard until ctx ends; ready receives the URL once it
// listens. A non-loopback address is refused unless allowRemote: whoever reaches the dashboard acts with
// the caller's Kubernetes identity.
func Serve(ctx context.Context, s *Server, addr string, allowRemote bool, ready func(url string)) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return exitcode.BadInputf("--address %q is not HOST:PORT (for example 127.0.0.1:8080)", addr)
	}
	if !IsLoopback(addr) && !allowRemote {
		return exitcode.BadInputf("--address %s is not a loopback address: anyone who reaches it would act with your Kubernetes identity; pass --allow-remote to accept that, or use 127.0.0.1", addr)
	}
	h, err := s.Handler(ctx, addr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return exitcode.BadInputf("cannot listen on %s: %v; pick another --address", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	ready(fmt.Sprintf("http://%s", ln.Addr().String()))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	// Open event streams end with ctx (BaseContext); a decision in flight is finished, not abandoned.
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	s.Wait()
	return nil
}
