package release

import (
	"testing"

	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/sandbox"
)

// Sandbox and Connect give the package's external tests (history_test.go) the cluster TestMain started.
func Sandbox() *sandbox.Cluster { return cluster }

func Connect(t *testing.T, namespace string) *kube.Client { return connect(t, namespace) }
