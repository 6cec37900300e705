package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/oneline"
)

// Decode parses a stream of YAML documents (separated by --- lines) or JSON objects read from src, which
// names the stream in sources and errors. Empty and comment-only documents are skipped; List kinds are
// flattened into their items. Values follow sigs.k8s.io/yaml, as kubectl does (so `yes` is a boolean); yaml.v3
// is used on the side for line numbers and to refuse duplicate mapping keys, which kubectl silently merges.
func Decode(src string, data []byte) ([]*Object, error) {
	if looksLikeJSON(data) {
		objs, err := decodeJSON(src, data)
		var syntax *json.SyntaxError
		if err == nil || !errors.As(err, &syntax) {
			return objs, err
		}
		// A YAML flow mapping also starts with '{'; only if YAML also fails is it broken JSON.
		if yobjs, yerr := decodeYAML(src, data); yerr == nil {
			return yobjs, nil
		}
		return nil, exitcode.BadInputf("%s:%d: JSON parse error: %s", src, lineAt(data, syntax.Offset), syntax.Error())
	}
	return decodeYAML(src, data)
}

func looksLikeJSON(data []byte) bool {
	t := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// lineAt is the 1-based line holding byte offset off.
func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}

func decodeJSON(src string, data []byte) ([]*Object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var objs []*Object
	for {
		off := dec.InputOffset()
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, exitcode.BadInputf("%s:%d: JSON parse error: unexpected end of input; close every { and [", src, lineAt(data, int64(len(data))))
		}
		if err != nil {
			return nil, err // a *json.SyntaxError; Decode decides between JSON and YAML errors
		}
		// The offset before Decode points at the whitespace before the value; skip it to get its line.
		start := off + int64(len(data[off:])-len(bytes.TrimLeft(data[off:], " \t\r\n")))
		line := lineAt(data, start)
		if err := notObject(src, line, raw); err != nil {
			return nil, err
		}
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			continue
		}
		var m map[string]any
		if err := utiljson.Unmarshal(raw, &m); err != nil {
			return nil, exitcode.BadInputf("%s:%d: JSON parse error: %v", src, line, oneline.Fold(err.Error()))
		}
		got, err := objectsOf(src, line, m, nil)
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
}

// notObject refuses a JSON document that is not an object.
func notObject(src string, line int, raw []byte) error {
	switch t := bytes.TrimSpace(raw); {
	case len(t) == 0, t[0] == '{', bytes.Equal(t, []byte("null")):
		return nil
	case t[0] == '[':
		return notObjectErr(src, line, "a list")
	default:
		return notObjectErr(src, line, "a scalar")
	}
}

func notObjectErr(src string, line int, what string) error {
	return exitcode.BadInputf("%s:%d: document is not a Kubernetes object (%s); each document must be a mapping with apiVersion and kind (separate objects with --- or use kind: List)", src, line, what)
}

// document is one YAML document of a stream and the line it starts on.
type document struct {
	line int
	data []byte
}

// splitDocuments cuts a YAML stream at its --- lines, like kubectl's YAML reader, keeping the line each
// document starts on. A separator line with content after it ("--- {a: 1}") starts the next document.
func splitDocuments(data []byte) []document {
	var docs []document
	cur := document{line: 1}
	start := 0
	line := 1
	for pos := 0; pos < len(data); line++ {
		end := bytes.IndexByte(data[pos:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += pos + 1
		}
		l := data[pos:end]
		if isSeparator(l) {
			cur.data = data[start:pos]
			docs = append(docs, cur)
			rest := bytes.TrimSpace(l[3:])
			if len(rest) > 0 && rest[0] != '#' {
				cur, start = document{line: line}, pos
			} else {
				cur, start = document{line: line + 1}, end
			}
		}
		pos = end
	}
	cur.data = data[start:]
	return append(docs, cur)
}

func isSeparator(line []byte) bool {
	return bytes.HasPrefix(line, []byte("---")) && (len(line) == 3 || strings.ContainsRune(" \t\r\n", rune(line[3])))
}

func decodeYAML(src string, data []byte) ([]*Object, error) {
	var objs []*Object
	for _, d := range splitDocuments(data) {
		got, err := decodeDocument(src, d)
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
	return objs, nil
}

func decodeDocument(src string, d document) ([]*Object, error) {
	dec := yaml.NewDecoder(bytes.NewReader(d.data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // empty or comment-only
		}
		return nil, yamlError(src, d.line, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(src, d.line, err)
		}
		return nil, exitcode.BadInputf("%s:%d: a second YAML document starts here; separate documents with a line holding only ---", src, d.line+next.Line-1)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	line := d.line + root.Line - 1
	switch root.Kind {
	case yaml.MappingNode:
	case yaml.ScalarNode:
		if root.Tag == "!!null" {
			return nil, nil
		}
		return nil, notObjectErr(src, line, "a scalar")
	case yaml.SequenceNode:
		return nil, notObjectErr(src, line, "a list")
	default:
		return nil, notObjectErr(src, line, "an alias")
	}
	if err := duplicateKeys(src, d.line, root); err != nil {
		return nil, err
	}
	j, err := sigsyaml.YAMLToJSON(d.data)
	if err != nil {
		return nil, yamlError(src, d.line, err)
	}
	var m map[string]any
	if err := utiljson.Unmarshal(j, &m); err != nil || m == nil {
		return nil, exitcode.BadInputf("%s:%d: document is not a Kubernetes object; each document must be a mapping with apiVersion and kind", src, line)
	}
	itemLines := func(i int) int {
		if items := mappingValue(root, "items"); items != nil && items.Kind == yaml.SequenceNode && i < len(items.Content) {
			return d.line + items.Content[i].Line - 1
		}
		return line
	}
	return objectsOf(src, line, m, itemLines)
}

// yamlLine matches the position both YAML libraries put in their messages.
var yamlLine = regexp.MustCompile(`^(?:error converting YAML to JSON: )?yaml: line (\d+): (.*)$`)

// yamlError turns a parser error on a document starting at docLine into a one-line error at the file line.
func yamlError(src string, docLine int, err error) error {
	msg := oneline.Fold(err.Error())
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return exitcode.BadInputf("%s:%d: YAML parse error: %s", src, docLine+n-1, m[2])
	}
	msg = strings.TrimPrefix(strings.TrimPrefix(msg, "error converting YAML to JSON: "), "yaml: ")
	return exitcode.BadInputf("%s:%d: YAML parse error: %s", src, docLine, msg)
}

// duplicateKeys refuses a mapping that defines a key twice: kubectl keeps the last one silently, which
// hides mistakes like two env: blocks. Aliases are not followed, so a crafted document cannot blow up.
func duplicateKeys(src string, docLine int, n *yaml.Node) error {
	switch n.Kind {
	case yaml.MappingNode:
		seen := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind == yaml.ScalarNode && k.Tag != "!!merge" {
				if first, ok := seen[k.Value]; ok {
					return exitcode.BadInputf("%s:%d: mapping key %q is defined twice (first at line %d); remove one", src, docLine+k.Line-1, k.Value, docLine+first-1)
				}
				seen[k.Value] = k.Line
			}
			if err := duplicateKeys(src, docLine, n.Content[i+1]); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if err := duplicateKeys(src, docLine, c); err != nil {
				return err
			}
		}
	}
	return nil
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// objectsOf checks one decoded document and flattens it when it is a List. itemLine, when known, gives
// the line of the List's i-th item.
func objectsOf(src string, line int, m map[string]any, itemLine func(i int) int) ([]*Object, error) {
	at := src
	if line > 0 {
		at = src + ":" + strconv.Itoa(line)
	}
	for _, f := range []struct{ field, example string }{{"apiVersion", "apps/v1"}, {"kind", "Deployment"}} {
		v, ok := m[f.field]
		if !ok || v == nil || v == "" {
			return nil, exitcode.BadInputf("%s: object has no %s; add one (e.g. %s: %s)", at, f.field, f.field, f.example)
		}
		if _, ok := v.(string); !ok {
			return nil, exitcode.BadInputf("%s: %s must be a string, not %v", at, f.field, v)
		}
	}
	u := &unstructured.Unstructured{Object: m}
	kind := u.GetKind()
	gv, err := schema.ParseGroupVersion(u.GetAPIVersion())
	if err != nil {
		return nil, exitcode.BadInputf("%s: apiVersion %q is not GROUP/VERSION or VERSION (e.g. apps/v1)", at, u.GetAPIVersion())
	}
	if gv.Group == "kustomize.config.k8s.io" {
		return nil, exitcode.BadInputf("%s: a %s is not a Kubernetes object: pass its folder to build it (-f FOLDER)", at, kind)
	}
	if items, ok := m["items"]; ok && strings.HasSuffix(kind, "List") {
		list, ok := items.([]any)
		if !ok && items != nil {
			return nil, exitcode.BadInputf("%s: %s items must be a list of objects", at, kind)
		}
		var objs []*Object
		for i, it := range list {
			il := line
			if itemLine != nil {
				il = itemLine(i)
			}
			im, ok := it.(map[string]any)
			if !ok {
				return nil, exitcode.BadInputf("%s:%d: %s item %d is not a Kubernetes object; each item must be a mapping with apiVersion and kind", src, il, kind, i)
			}
			// Nested lists are flattened too; their items' lines are not tracked.
			got, err := objectsOf(src, il, im, nil)
			if err != nil {
				return nil, err
			}
			objs = append(objs, got...)
		}
		return objs, nil
	}
	if md, ok := m["metadata"]; ok && md != nil {
		if _, ok := md.(map[string]any); !ok {
			return nil, exitcode.BadInputf("%s: %s metadata must be a mapping", at, kind)
		}
	}
	meta, _, _ := unstructured.NestedMap(m, "metadata")
	if v, ok := meta["name"]; ok && v != nil {
		if _, ok := v.(string); !ok {
			return nil, exitcode.BadInputf("%s: %s metadata.name must be a string, not %v; quote it", at, kind, v)
		}
	}
	name, _ := meta["name"].(string)
	if name == "" {
		if _, ok := meta["generateName"]; ok {
			return nil, exitcode.BadInputf("%s: %s has metadata.generateName but no metadata.name; apply needs a fixed name: set metadata.name", at, kind)
		}
		return nil, exitcode.BadInputf("%s: %s has no metadata.name; add one", at, kind)
	}
	if ns, ok := meta["namespace"]; ok && ns != nil {
		if _, ok := ns.(string); !ok {
			return nil, exitcode.BadInputf("%s: %s %s metadata.namespace must be a string", at, kind, name)
		}
	}
	return []*Object{{Unstructured: u, Source: at}}, nil
}
