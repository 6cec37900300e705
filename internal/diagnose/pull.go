package diagnose

import (
	"fmt"
	"strings"
)

// Image pulls fail for two kinds of reasons that need opposite handling. The registry (or the runtime) can
// say the image does not exist or may not be served: retrying never helps, so that fails at once. Or the
// network or the registry itself is in trouble (timeouts, refused connections, DNS, TLS, 5xx, rate limits):
// the next pull often works (krane PR #477), so that is tolerated for Thresholds.ImagePullGrace.

// pullKind is what a pull error says about the image.
type pullKind int

const (
	// pullTransient: network or registry trouble, or an error we cannot read; the next pull may work.
	pullTransient pullKind = iota
	// pullMissing: the registry says the image or tag does not exist.
	pullMissing
	// pullRefused: the registry refused access (credentials, permissions).
	pullRefused
	// pullInvalid: the reference itself is wrong, or the pull policy forbids pulling.
	pullInvalid
)

// words the user reads in the verdict: "registry unreachable" versus "image missing".
func (k pullKind) String() string {
	switch k {
	case pullMissing:
		return "image missing"
	case pullRefused:
		return "registry refused access"
	case pullInvalid:
		return "invalid image"
	}
	return "registry unreachable"
}

func (k pullKind) definitive() bool { return k != pullTransient }

// Checked in this order: a message such as `unexpected status 401 ... i/o timeout` is about access, and
// transient words are only looked for when nothing definitive is said.
var (
	pullMissingWords = []string{"not found", "manifest unknown", "name unknown", "repository does not exist",
		"no such image", "does not exist"}
	pullRefusedWords = []string{"unauthorized", "denied", "authentication required", "forbidden",
		" 401", " 403", "status: 401", "status: 403", "incorrect username or password"}
	pullInvalidWords = []string{"invalid reference format", "invalid reference", "repository name must"}
)

// classifyPull decides from the waiting reason and the kubelet's (or runtime's) message whether a pull error
// is definitive. Anything not recognised is transient: a false "image missing" would roll back a healthy
// release, a false "unreachable" only waits longer.
func classifyPull(reason, detail string) pullKind {
	switch reason {
	case "InvalidImageName", "ErrImageNeverPull":
		return pullInvalid
	}
	d := strings.ToLower(detail)
	for _, w := range pullInvalidWords {
		if strings.Contains(d, w) {
			return pullInvalid
		}
	}
	for _, w := range pullRefusedWords {
		if strings.Contains(d, w) {
			return pullRefused
		}
	}
	for _, w := range pullMissingWords {
		if strings.Contains(d, w) {
			return pullMissing
		}
	}
	return pullTransient
}

// transientPullRetries is how many failed pulls of every new pod make a transient error a failure before
// the grace: a registry that failed each pod three times across the kubelet's back-off (10 s, 20 s, ...)
// is down, not blipping.
const transientPullRetries = 3

func pullFix(kind pullKind, reason, image string) string {
	switch {
	case reason == "InvalidImageName":
		return fmt.Sprintf("fix the image reference %q: it is not a valid image name", image)
	case reason == "ErrImageNeverPull":
		return fmt.Sprintf("imagePullPolicy is Never but %q is not on the node: use IfNotPresent or preload the image", image)
	case kind == pullRefused:
		return fmt.Sprintf("the registry refused to serve %q: add or fix imagePullSecrets (or the service account's) for it", image)
	case kind == pullMissing:
		return fmt.Sprintf("image %q does not exist: check the repository and tag, and that it was pushed before deploying", image)
	case kind == pullInvalid:
		return fmt.Sprintf("fix the image reference %q", image)
	}
	return fmt.Sprintf("the nodes cannot reach the registry of %q: check the registry's status, the nodes' network, DNS and proxy; rollguard waits --image-pull-grace for such errors", image)
}
