// Package version holds the build's version, set with -ldflags at release time.
package version

import "runtime/debug"

// Version is overridden by `-ldflags "-X github.com/rollguard/rollguard/internal/version.Version=v1.2.3"`.
var Version = "dev"

// String is the version with the VCS revision when the Go toolchain recorded one.
func String() string {
	v := Version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return v + " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
}
