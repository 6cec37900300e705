package lifecycle

import (
	"strings"
	"testing"
)

func TestBefore(t *testing.T) {
	images := []Image{
		{Digest: "sha256:a", Tags: []string{"1.0.0"}, Pushed: daysAgo(5)},
		{Digest: "sha256:c", Tags: []string{"1.1.0"}, Pushed: daysAgo(4)},
		{Digest: "sha256:b", Tags: []string{"1.0.1", "stable"}, Pushed: daysAgo(3)}, // a hotfix pushed after 1.1.0
		{Digest: "sha256:u", Pushed: daysAgo(2)},                                    // untagged: never a rollback tag
		{Digest: "sha256:d", Tags: []string{"dev-x"}, Pushed: daysAgo(1)},
		{Digest: "sha256:e", Tags: []string{"1.2.0"}, Pushed: daysAgo(0)},
	}
	tests := []struct {
		running, prefix, want, err string
	}{
		{running: "sha256:e", want: "dev-x"},
		{running: "sha256:e", prefix: "1.", want: "1.0.1"}, // by push time, not version
		{running: "sha256:b", prefix: "1.", want: "1.1.0"},
		{running: "sha256:d", prefix: "1.", want: "1.0.1"}, // running need not carry the prefix
		{running: "sha256:a", err: "no tagged image was pushed before the running one"},
		{running: "sha256:zz", err: "not in the repository"},
	}
	for _, tt := range tests {
		img, tags, err := Before(images, tt.running, tt.prefix)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s %q: error %v, want %q", tt.running, tt.prefix, err, tt.err)
			}
			continue
		}
		if err != nil || tags[0] != tt.want {
			t.Errorf("%s %q: %v %v, %v; want %s", tt.running, tt.prefix, img.Digest, tags, err, tt.want)
		}
	}
	tie := append(images, Image{Digest: "sha256:t", Tags: []string{"1.0.9"}, Pushed: daysAgo(3)})
	if _, _, err := Before(tie, "sha256:e", "1."); err == nil || !strings.Contains(err.Error(), "same push time") {
		t.Errorf("a tie before the running image: %v", err)
	}
}
