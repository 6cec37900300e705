package manifest

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/rollguard/rollguard/internal/exitcode"
)

// describe lists objects as "Kind ns/name @ source" for compact comparisons.
func describe(objs []*Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.String() + " @ " + o.Source
	}
	return out
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		stdin io.Reader
		want  []string
	}{
		{
			name:  "multi-document file skips empty and comment-only documents",
			paths: []string{"testdata/multi.yaml"},
			want: []string{
				"ConfigMap web-config @ testdata/multi.yaml:3",
				"Deployment web @ testdata/multi.yaml:14",
				"Service web @ testdata/multi.yaml:34",
			},
		},
		{
			name:  "List is flattened with the line of each item",
			paths: []string{"testdata/list.yaml"},
			want: []string{
				"ServiceAccount web @ testdata/list.yaml:4",
				"CronJob report @ testdata/list.yaml:9",
			},
		},
		{
			name:  "content on a separator line starts a document",
			paths: []string{"testdata/flow.yaml"},
			want: []string{
				"ConfigMap first @ testdata/flow.yaml:1",
				"ConfigMap second @ testdata/flow.yaml:2",
			},
		},
		{
			name:  "folder loads yaml, yml and json in lexical order, not subfolders or other files",
			paths: []string{"testdata/folder"},
			want: []string{
				"Namespace shop @ testdata/folder/10-namespace.yaml:1",
				"ConfigMap shop/json-config @ testdata/folder/20-config.json:1",
				"Secret shop/json-secret @ testdata/folder/20-config.json:7",
				"StatefulSet shop/db @ testdata/folder/30-app.yml:1",
			},
		},
		{
			name:  "stdin",
			paths: []string{"-"},
			stdin: strings.NewReader("\n# rendered by helm\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-helm\n"),
			want:  []string{"ConfigMap from-helm @ <stdin>:4"},
		},
		{
			name:  "CRLF line endings and a byte-order mark",
			paths: []string{"-"},
			stdin: strings.NewReader("\ufeffapiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: a\r\n---\r\n\r\napiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: b\r\n"),
			want:  []string{"ConfigMap a @ <stdin>:1", "ConfigMap b @ <stdin>:7"},
		},
		{
			name:  "stdin JSON List",
			paths: []string{"-"},
			stdin: strings.NewReader(`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}]}`),
			want:  []string{"ConfigMap a @ <stdin>:1"},
		},
		{
			name:  "several paths keep their order",
			paths: []string{"testdata/list.yaml", "-", "testdata/flow.yaml"},
			stdin: strings.NewReader("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: middle}\n"),
			want: []string{
				"ServiceAccount web @ testdata/list.yaml:4",
				"CronJob report @ testdata/list.yaml:9",
				"ConfigMap middle @ <stdin>:1",
				"ConfigMap first @ testdata/flow.yaml:1",
				"ConfigMap second @ testdata/flow.yaml:2",
			},
		},
		{
			name:  "kustomize overlay builds its base",
			paths: []string{"testdata/kustomize/overlay"},
			want:  []string{"Deployment prod/web @ kustomize:testdata/kustomize/overlay"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Load(context.Background(), tt.paths, tt.stdin)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := describe(objs); !slices.Equal(got, tt.want) {
				t.Errorf("objects:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestLoadValues(t *testing.T) {
	objs, err := Load(context.Background(), []string{"testdata/kustomize/overlay", "testdata/folder/30-app.yml"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The overlay's images: transformer replaced the base's tag.
	if got := containerImages(objs[0]); !slices.Equal(got, []string{"web=registry.example.com/web:2.0.0"}) {
		t.Errorf("kustomized images = %q", got)
	}
	// Numbers must be int64 (what unstructured and its DeepCopy require), from YAML and from kustomize.
	for _, o := range objs {
		if r, ok := o.Object["spec"].(map[string]any)["replicas"]; !ok {
			t.Errorf("%s: no spec.replicas", o)
		} else if _, ok := r.(int64); !ok {
			t.Errorf("%s: spec.replicas is %T, want int64", o, r)
		}
		_ = o.DeepCopy() // panics on non-JSON types
	}
}

// containerImages lists "name=image" of every container of o, init containers first.
func containerImages(o *Object) []string {
	var out []string
	for _, c := range containers(o) {
		img, _ := c.m["image"].(string)
		out = append(out, c.name+"="+img)
	}
	return out
}

func TestLoadErrors(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		name  string
		paths []string
		stdin io.Reader
		want  string
	}{
		{"no paths", nil, nil, "no manifests given: pass -f FILE, -f FOLDER or -f -"},
		{"empty path", []string{""}, nil, "empty manifest path: pass -f FILE, -f FOLDER or -f -"},
		{"missing file", []string{"testdata/missing.yaml"}, nil, "no such file: testdata/missing.yaml"},
		{"empty folder", []string{empty}, nil, "folder " + empty + " contains no .yaml, .yml or .json files"},
		{"folder with only subfolders", []string{"testdata/nested"}, nil,
			"folder testdata/nested contains no .yaml, .yml or .json files (subfolders are not read: pass each with its own -f)"},
		{"helm chart folder", []string{"testdata/chart"}, nil,
			"folder testdata/chart is a Helm chart: render it first: helm template RELEASE testdata/chart | rollguard deploy -f -"},
		{"kustomization file", []string{"testdata/kustomize/overlay/kustomization.yaml"}, nil,
			"testdata/kustomize/overlay/kustomization.yaml is a kustomization file: pass its folder to build it: -f testdata/kustomize/overlay"},
		{"kustomization object", []string{"-"}, strings.NewReader("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n"),
			"<stdin>:1: a Kustomization is not a Kubernetes object: pass its folder to build it (-f FOLDER)"},
		{"only empty documents", []string{"testdata/bad/empty.yaml"}, nil,
			"no Kubernetes objects in testdata/bad/empty.yaml: every document is empty; check the paths (or the command piped into -f -)"},
		{"empty stdin", []string{"-"}, strings.NewReader(""),
			"no Kubernetes objects in standard input: every document is empty; check the paths (or the command piped into -f -)"},
		{"stdin twice", []string{"-", "-"}, strings.NewReader(""), "-f - given twice: standard input can be read only once"},
		{"no stdin", []string{"-"}, nil, "-f - given but standard input is not available; pipe manifests in or pass -f FILE"},
		{"stdin read error", []string{"-"}, iotest.ErrReader(errors.New("broken pipe")), "reading manifests from standard input: broken pipe"},
		{"parse error has the line of the error", []string{"testdata/bad/parse-error.yaml"}, nil,
			"testdata/bad/parse-error.yaml:10: YAML parse error: mapping values are not allowed in this context"},
		{"tab indentation", []string{"testdata/bad/tab.yaml"}, nil,
			"testdata/bad/tab.yaml:4: YAML parse error: found character that cannot start any token"},
		{"scalar document", []string{"testdata/bad/scalar.yaml"}, nil,
			"testdata/bad/scalar.yaml:7: document is not a Kubernetes object (a scalar); each document must be a mapping with apiVersion and kind (separate objects with --- or use kind: List)"},
		{"sequence document", []string{"testdata/bad/sequence.yaml"}, nil,
			"testdata/bad/sequence.yaml:1: document is not a Kubernetes object (a list); each document must be a mapping with apiVersion and kind (separate objects with --- or use kind: List)"},
		{"JSON array", []string{"testdata/bad/array.json"}, nil,
			"testdata/bad/array.json:1: document is not a Kubernetes object (a list); each document must be a mapping with apiVersion and kind (separate objects with --- or use kind: List)"},
		{"broken JSON", []string{"testdata/bad/broken.json"}, nil,
			"testdata/bad/broken.json:4: JSON parse error: invalid character ',' looking for beginning of object key string"},
		{"truncated JSON", []string{"-"}, strings.NewReader("{\n\"apiVersion\": \"v1\",\n"),
			"<stdin>:3: JSON parse error: unexpected end of input; close every { and ["},
		{"no kind", []string{"testdata/bad/no-kind.yaml"}, nil,
			"testdata/bad/no-kind.yaml:8: object has no kind; add one (e.g. kind: Deployment)"},
		{"no apiVersion", []string{"testdata/bad/no-apiversion.yaml"}, nil,
			"testdata/bad/no-apiversion.yaml:1: object has no apiVersion; add one (e.g. apiVersion: apps/v1)"},
		{"kind not a string", []string{"testdata/bad/kind-not-string.yaml"}, nil,
			"testdata/bad/kind-not-string.yaml:1: kind must be a string, not [ConfigMap]"},
		{"no name", []string{"testdata/bad/no-name.yaml"}, nil,
			"testdata/bad/no-name.yaml:1: Deployment has no metadata.name; add one"},
		{"name not a string", []string{"-"}, strings.NewReader("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: 123\n"),
			"<stdin>:1: ConfigMap metadata.name must be a string, not 123; quote it"},
		{"generateName", []string{"testdata/bad/generate-name.yaml"}, nil,
			"testdata/bad/generate-name.yaml:1: Job has metadata.generateName but no metadata.name; apply needs a fixed name: set metadata.name"},
		{"duplicate key", []string{"testdata/bad/dup-key.yaml"}, nil,
			`testdata/bad/dup-key.yaml:8: mapping key "color" is defined twice (first at line 6); remove one`},
		{"bad List item", []string{"testdata/bad/list-item.yaml"}, nil,
			"testdata/bad/list-item.yaml:8: List item 1 is not a Kubernetes object; each item must be a mapping with apiVersion and kind"},
		{"duplicate objects across files", []string{"testdata/bad/dup-a.yaml", "testdata/bad/dup-b.yaml"}, nil,
			"duplicate object: ConfigMap shop/shared is defined at testdata/bad/dup-a.yaml:1 and again at testdata/bad/dup-b.yaml:7; remove one"},
		{"same file twice", []string{"testdata/list.yaml", "testdata/list.yaml"}, nil,
			"duplicate object: ServiceAccount web is defined at testdata/list.yaml:4 and again at testdata/list.yaml:4; remove one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Load(context.Background(), tt.paths, tt.stdin)
			if err == nil {
				t.Fatalf("Load succeeded with %q, want error %q", describe(objs), tt.want)
			}
			if got := exitcode.Of(err); got != exitcode.BadInput {
				t.Errorf("exit code %d, want %d (bad input)", got, exitcode.BadInput)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %q\nwant %q", err, tt.want)
			}
		})
	}
}

func TestLoadBrokenKustomization(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte("resources:\n  - missing.yaml\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(context.Background(), []string{dir}, nil)
	if err == nil {
		t.Fatal("Load succeeded, want an error")
	}
	if exitcode.Of(err) != exitcode.BadInput || strings.Contains(err.Error(), "\n") ||
		!strings.HasPrefix(err.Error(), "kustomize build "+dir+": ") || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("error %q: want one bad-input line naming the folder and missing.yaml", err)
	}
}

func TestLoadCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Load(ctx, []string{"testdata/multi.yaml"}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Load on a cancelled context: %v, want context.Canceled", err)
	}
}

func TestDecodeKubectlValueSemantics(t *testing.T) {
	// kubectl (sigs.k8s.io/yaml) reads yes as a boolean and 0644 as octal; users' manifests rely on it.
	objs, err := Decode("x.yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\nflag: yes\nmode: 0644\nbig: 1.5\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := objs[0].Object
	if o["flag"] != true || o["mode"] != int64(420) || o["big"] != 1.5 {
		t.Errorf("flag=%#v mode=%#v big=%#v, want true, int64(420), 1.5", o["flag"], o["mode"], o["big"])
	}
}

func FuzzLoad(f *testing.F) {
	for _, p := range []string{"testdata/multi.yaml", "testdata/list.yaml", "testdata/flow.yaml", "testdata/folder/20-config.json", "testdata/bad/parse-error.yaml", "testdata/bad/dup-key.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: &a [*a, *a]\nb: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Decode("fuzz.yaml", data)
		if err != nil {
			if exitcode.Of(err) != exitcode.BadInput {
				t.Fatalf("error without bad-input code: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		for _, o := range objs {
			if o.GetKind() == "" || o.GetAPIVersion() == "" || o.GetName() == "" {
				t.Fatalf("invalid object accepted: %v", o.Object)
			}
			_ = o.DeepCopy() // panics unless every value is a JSON type
		}
	})
}
