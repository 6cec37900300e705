package main

import "testing"

func TestPluginName(t *testing.T) {
	for arg0, want := range map[string]string{
		"/usr/local/bin/kubectl-rollguard":    "kubectl rollguard",
		"kubectl-rollguard":                   "kubectl rollguard",
		"/home/u/.krew/bin/kubectl-rollguard": "kubectl rollguard",
		"rollguard":                           "",
		"/tmp/go-build1/exe/rollguard":        "",
		"kubectl-":                            "",
	} {
		if got := pluginName(arg0); got != want {
			t.Errorf("pluginName(%q) = %q, want %q", arg0, got, want)
		}
	}
}
