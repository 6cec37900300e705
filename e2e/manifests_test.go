package e2e

import (
	"fmt"
	"strings"
)

// app describes a Deployment for a test; the zero value is a healthy three-replica web app.
type app struct {
	name     string
	kind     string // Deployment (default), StatefulSet or DaemonSet
	replicas int
	image    string
	// scenario selects a kwok failure stage (sandbox.rollguard.dev/scenario); empty is healthy.
	scenario string
	// annotations go on the pod template.
	annotations     map[string]string
	serviceAccount  string
	cpu             string // request and limit, e.g. "100m"
	cpuRequest      string // request only, so a LimitRange's default limit applies
	hostNetwork     bool
	recreate        bool // strategy Recreate: the old pods go before the new ones start
	readinessProbe  bool
	progressDeadine int
}

func (a app) yaml() string {
	if a.name == "" {
		a.name = "web"
	}
	if a.kind == "" {
		a.kind = "Deployment"
	}
	if a.replicas == 0 {
		a.replicas = 3
	}
	if a.image == "" {
		a.image = "registry.example.com/web:1.0.0"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: apps/v1\nkind: %s\nmetadata:\n  name: %s\nspec:\n", a.kind, a.name)
	if a.kind != "DaemonSet" {
		fmt.Fprintf(&b, "  replicas: %d\n", a.replicas)
	}
	if a.kind == "StatefulSet" {
		fmt.Fprintf(&b, "  serviceName: %s\n", a.name)
	}
	if a.recreate {
		b.WriteString("  strategy:\n    type: Recreate\n")
	}
	if a.progressDeadine > 0 {
		fmt.Fprintf(&b, "  progressDeadlineSeconds: %d\n", a.progressDeadine)
	}
	fmt.Fprintf(&b, "  selector:\n    matchLabels:\n      app: %s\n", a.name)
	fmt.Fprintf(&b, "  template:\n    metadata:\n      labels:\n        app: %s\n", a.name)
	if a.scenario != "" {
		fmt.Fprintf(&b, "        sandbox.rollguard.dev/scenario: %s\n", a.scenario)
	}
	if len(a.annotations) > 0 {
		b.WriteString("      annotations:\n")
		for k, v := range a.annotations {
			fmt.Fprintf(&b, "        %s: %q\n", k, v)
		}
	}
	b.WriteString("    spec:\n")
	if a.serviceAccount != "" {
		fmt.Fprintf(&b, "      serviceAccountName: %s\n", a.serviceAccount)
	}
	if a.hostNetwork {
		b.WriteString("      hostNetwork: true\n")
	}
	fmt.Fprintf(&b, "      containers:\n      - name: %s\n        image: %s\n", a.name, a.image)
	if a.cpu != "" {
		fmt.Fprintf(&b, "        resources:\n          requests:\n            cpu: %s\n          limits:\n            cpu: %s\n", a.cpu, a.cpu)
	}
	if a.cpuRequest != "" {
		fmt.Fprintf(&b, "        resources:\n          requests:\n            cpu: %s\n", a.cpuRequest)
	}
	if a.readinessProbe {
		b.WriteString("        readinessProbe:\n          httpGet:\n            path: /healthz\n            port: 8080\n          periodSeconds: 1\n          failureThreshold: 2\n")
	}
	return b.String()
}
