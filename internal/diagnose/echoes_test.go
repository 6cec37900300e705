package diagnose

import "testing"

func TestWithoutImageEchoes(t *testing.T) {
	img := "registry.example.com/shop/web:1.1.0"
	for _, tc := range []struct{ in, want string }{
		{`failed to pull and unpack image "registry.example.com/shop/web:1.1.0": failed to resolve reference "registry.example.com/shop/web:1.1.0": "registry.example.com/shop/web:1.1.0": not found`, "not found"},
		{`failed to pull and unpack image "registry.example.com/shop/web:1.1.0": failed to resolve reference "registry.example.com/shop/web:1.1.0": pull access denied, repository does not exist or may require authorization: authorization failed`, "pull access denied, repository does not exist or may require authorization: authorization failed"},
		// containerd 2.x (the real node): the image unquoted, and a network error with no image at all
		{`failed to pull and unpack image "registry.example.com/shop/web:1.1.0": failed to resolve image: registry.example.com/shop/web:1.1.0: not found`, "not found"},
		{`failed to pull and unpack image "registry.example.com/shop/web:1.1.0": failed to resolve image: failed to do request: Head "http://127.0.0.1:5000/v2/shop/web/manifests/1.1.0": dial tcp 127.0.0.1:5000: connect: connection refused`,
			`failed to do request: Head "http://127.0.0.1:5000/v2/shop/web/manifests/1.1.0": dial tcp 127.0.0.1:5000: connect: connection refused`},
		{`Back-off pulling image "other:1"`, `Back-off pulling image "other:1"`},
		{`"registry.example.com/shop/web:1.1.0": `, "pull failed"},
	} {
		if got := withoutImageEchoes(tc.in, img); got != tc.want {
			t.Errorf("withoutImageEchoes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
