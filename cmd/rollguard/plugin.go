package main

import (
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// pluginName is the kubectl plugin name this binary runs as when installed as kubectl-rollguard (krew does
// that), or "" when it runs as itself. kubectl finds plugins by the kubectl- prefix on PATH.
func pluginName(arg0 string) string {
	base := filepath.Base(arg0)
	if rest, ok := strings.CutPrefix(base, "kubectl-"); ok && rest != "" {
		// kubectl turns dashes in a plugin file name into spaces (kubectl-foo-bar is "kubectl foo bar").
		return "kubectl " + strings.ReplaceAll(rest, "-", " ")
	}
	return ""
}

// asPlugin makes usage lines, help and examples name the command the user typed ("kubectl rollguard
// status"), not a binary that may not be on PATH.
func asPlugin(root *cobra.Command, name string) {
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	root.Annotations[cobra.CommandDisplayNameAnnotation] = name
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, before := range []string{"  ", "| "} {
			c.Example = strings.ReplaceAll(c.Example, before+"rollguard ", before+name+" ")
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
