//go:build tools

package sandbox

import (
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/tools/clientcmd"
	_ "k8s.io/api/core/v1"
)
