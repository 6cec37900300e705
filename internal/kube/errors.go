package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/oneline"
)

// Classify turns an error from talking to the API server into one that carries rollguard's exit code and a
// one-line fix: unreachable or unauthenticated → 4; forbidden, invalid or missing → 3 (bad input, nothing
// changed when it happens before apply). Callers pass what they were doing ("applying Deployment/web").
// The original error stays wrapped, so apierrors.Is*, errors.Is(err, context.Canceled) and errors.As
// still see it; only the message is rewritten. An interrupted request (Ctrl-C, a lost lock) is neither
// unreachable nor bad input: it keeps its own error.
func Classify(err error, doing, server string) error {
	if err == nil {
		return nil
	}
	var ec *exitcode.Error
	if errors.As(err, &ec) {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", doing, err)
	case apierrors.IsUnauthorized(err):
		return classified(exitcode.Unreachable, err, "%s: the cluster at %s rejected the credentials (401 Unauthorized); refresh them (for example az aks get-credentials, aws eks update-kubeconfig, gcloud container clusters get-credentials) or check --kubeconfig/--context", doing, server)
	case apierrors.IsForbidden(err):
		return classified(exitcode.BadInput, err, "%s: forbidden: %s; grant the missing permission to this identity (rollguard rbac prints the role it needs)", doing, apiMessage(err))
	case apierrors.IsInvalid(err):
		return classified(exitcode.BadInput, err, "%s: invalid: %s", doing, invalidCauses(err))
	case apierrors.IsBadRequest(err):
		return classified(exitcode.BadInput, err, "%s: rejected by the API server: %s", doing, apiMessage(err))
	case apierrors.IsNotFound(err):
		return classified(exitcode.BadInput, err, "%s: not found: %s", doing, apiMessage(err))
	case webhookName(err) != "":
		// The API server answered; an admission webhook it must call did not. Retrying the release once
		// the webhook's service is back works; pointing at the network or the kubeconfig would mislead.
		return classified(exitcode.BadInput, err, "%s: the API server could not call admission webhook %q: %s; check that webhook's service and endpoints (or its failurePolicy), then run again",
			doing, webhookName(err), webhookCause(err))
	case isUnreachable(err):
		return classified(exitcode.Unreachable, err, "%s: cannot reach the cluster at %s: %s; check the network, --kubeconfig and --context", doing, server, rootCause(err))
	case isCredentialPlugin(err):
		return classified(exitcode.Unreachable, err, "%s: could not get credentials for %s: %s; check the kubeconfig's exec plugin and log in again", doing, server, rootCause(err))
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// Classified is a classified error: the one-line message for people, the original error for code.
type Classified struct {
	Msg string
	Err error
}

func (e *Classified) Error() string { return e.Msg }
func (e *Classified) Unwrap() error { return e.Err }

func classified(code int, err error, format string, a ...any) error {
	return &exitcode.Error{Code: code, Err: &Classified{Msg: fmt.Sprintf(format, a...), Err: err}}
}

// classifyConfigError is for errors before any request: no kubeconfig, a bad context, a broken file.
func classifyConfigError(err error) error {
	if clientcmd.IsEmptyConfig(err) {
		return exitcode.Unreachablef("no cluster configured: set KUBECONFIG, pass --kubeconfig, or run inside a cluster")
	}
	if clientcmd.IsConfigurationInvalid(err) || strings.Contains(err.Error(), "context") {
		return exitcode.Unreachablef("kubeconfig is not usable: %s; check --kubeconfig and --context", oneline.Fold(err.Error()))
	}
	return exitcode.Unreachablef("loading kubeconfig: %s", oneline.Fold(err.Error()))
}

// isUnreachable says the request did not get an answer from the API server: no connection, no name, a
// network timeout, a connection cut mid-answer, or a TLS failure. A request that was cancelled is not one.
func isUnreachable(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return false // an answer from the API server, even if its message quotes a refused connection
	}
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	// Network and request deadlines: the server did not answer in time.
	if errors.As(err, &netErr) && netErr.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	// The connection closed before the answer was complete.
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	// Discovery and some client-go paths flatten their errors into text.
	msg := err.Error()
	for _, s := range []string{"connection refused", "connection reset", ": EOF", "no such host", "i/o timeout", "x509:", "tls:", "certificate"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// webhookCall matches the API server's message when it cannot call an admission webhook (down, no
// endpoints, timing out) for an object whose webhook fails closed.
var webhookCall = regexp.MustCompile(`failed calling webhook "([^"]+)": (?:failed to call webhook: )?(.*)$`)

// webhookName is the admission webhook an API error says could not be called, or "".
func webhookName(err error) string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return ""
	}
	if m := webhookCall.FindStringSubmatch(oneline.Fold(status.Status().Message)); m != nil {
		return m[1]
	}
	return ""
}

func webhookCause(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		if m := webhookCall.FindStringSubmatch(oneline.Fold(status.Status().Message)); m != nil {
			return m[2]
		}
	}
	return apiMessage(err)
}

func isCredentialPlugin(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "getting credentials") || strings.Contains(msg, "exec plugin")
}

func apiMessage(err error) string {
	msg := err.Error()
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		msg = status.Status().Message
	}
	msg = oneline.Fold(msg)
	// One readable line: an API message can embed whole objects.
	if len(msg) > 400 {
		msg = msg[:400] + "…"
	}
	return msg
}

// invalidCauses lists each field error ("spec.replicas: Invalid value: -1: must be >= 0"), which is what a
// user needs to fix, instead of the long generic message.
func invalidCauses(err error) string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil || len(status.Status().Details.Causes) == 0 {
		return apiMessage(err)
	}
	var parts []string
	for _, c := range status.Status().Details.Causes {
		msg := shortValue(oneline.Fold(c.Message))
		if c.Field != "" {
			parts = append(parts, c.Field+": "+msg)
		} else {
			parts = append(parts, msg)
		}
	}
	return strings.Join(parts, "; ")
}

// shortValue drops a long rejected value from "Invalid value: <value>: <reason>": for an immutable pod
// template the value is a Go struct dump of thousands of characters, while the reason is what helps.
func shortValue(msg string) string {
	const prefix = "Invalid value: "
	if !strings.HasPrefix(msg, prefix) || len(msg) < 160 {
		return msg
	}
	if i := strings.LastIndex(msg, ": "); i > len(prefix) {
		return msg[i+2:]
	}
	return msg[:160] + "…"
}

func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return oneline.Fold(err.Error())
		}
		err = next
	}
}
