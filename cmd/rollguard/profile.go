package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// profileEnv names a file that receives a CPU profile of the whole run (`go tool pprof rollguard FILE`):
// how the benchmarks find where a large deploy spends its time. Not a flag: it is for the developers.
const profileEnv = "ROLLGUARD_CPUPROFILE"

// startProfile starts the CPU profile ROLLGUARD_CPUPROFILE asks for; the returned func ends it.
func startProfile() func() {
	path := os.Getenv(profileEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", profileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", profileEnv, err)
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}
