// Package version holds the build's version, set with -ldflags at release time.
package version

import "runtime/debug"

// Version is overridden by `-ldflags "-X github.com/rollguard/rollguard/internal/version.Version=v1.2.3"`.
var Version = "dev"

// String is the version: set at release time, else the module version the Go toolchain embedded (a tag,
// or a pseudo-version from the VCS), with the VCS revision when one was recorded.
func String() string {
	v := Version
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			if len(s.Value) >= 12 {
				rev = s.Value[:12]
			}
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev != "" {
		return v + " (" + rev + modified + ")"
	}
	return v
}
