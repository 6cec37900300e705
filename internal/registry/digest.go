package registry

import "strings"

// ShortDigest is a digest as people compare them, "sha256:0123456789ab": the algorithm and the first 12
// hex digits, as in every table and message rollguard prints (images prune, envs, the dashboard).
func ShortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12]
}
