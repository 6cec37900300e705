package manifest

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/oneline"
)

// Load reads the objects of every path, in order. A path is a file, "-" for stdin, or a folder. A folder
// holding a kustomization (kustomization.yaml, kustomization.yml or Kustomization) is built with kustomize;
// any other folder contributes its *.yaml, *.yml and *.json files in lexical order, without descending into
// subfolders (like kubectl without -R). Every error is a one-line bad-input error (exit 3) naming the file,
// the line and the fix.
func Load(ctx context.Context, paths []string, stdin io.Reader) ([]*Object, error) {
	if len(paths) == 0 {
		return nil, exitcode.BadInputf("no manifests given: pass -f FILE, -f FOLDER or -f -")
	}
	var objs []*Object
	readStdin := false
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var got []*Object
		var err error
		switch {
		case p == "":
			return nil, exitcode.BadInputf("empty manifest path: pass -f FILE, -f FOLDER or -f -")
		case p == StdinPath:
			if readStdin {
				return nil, exitcode.BadInputf("-f - given twice: standard input can be read only once")
			}
			readStdin = true
			got, err = loadStdin(stdin)
		default:
			got, err = loadPath(ctx, p)
		}
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
	if len(objs) == 0 {
		shown := slices.Clone(paths)
		if i := slices.Index(shown, StdinPath); i >= 0 {
			shown[i] = "standard input"
		}
		return nil, exitcode.BadInputf("no Kubernetes objects in %s: every document is empty; check the paths (or the command piped into -f -)", strings.Join(shown, ", "))
	}
	if err := checkDuplicates(objs); err != nil {
		return nil, err
	}
	return objs, nil
}

func loadStdin(stdin io.Reader) ([]*Object, error) {
	if stdin == nil {
		return nil, exitcode.BadInputf("-f - given but standard input is not available; pipe manifests in or pass -f FILE")
	}
	data, err := io.ReadAll(stdin)
	if err != nil {
		return nil, exitcode.BadInputf("reading manifests from standard input: %v", err)
	}
	return Decode(stdinName, data)
}

func loadPath(ctx context.Context, p string) ([]*Object, error) {
	info, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, exitcode.BadInputf("no such file: %s", p)
	}
	if err != nil {
		return nil, exitcode.BadInputf("reading %s: %v", p, oneline.Fold(err.Error()))
	}
	if info.IsDir() {
		return loadFolder(ctx, p)
	}
	return loadFile(p)
}

func loadFile(p string) ([]*Object, error) {
	if slices.Contains(konfig.RecognizedKustomizationFileNames(), filepath.Base(p)) {
		return nil, exitcode.BadInputf("%s is a kustomization file: pass its folder to build it: -f %s", p, filepath.Dir(p))
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, exitcode.BadInputf("reading %s: %v", p, oneline.Fold(err.Error()))
	}
	return Decode(p, data)
}

// manifestExt reports whether a file name has an extension a folder load reads (like kubectl: .yaml, .yml,
// .json; case-insensitive so that WEB.YAML is not silently skipped).
func manifestExt(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func loadFolder(ctx context.Context, dir string) ([]*Object, error) {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, exitcode.BadInputf("reading folder %s: %v", dir, oneline.Fold(err.Error()))
	}
	for _, e := range entries {
		if !e.IsDir() && slices.Contains(konfig.RecognizedKustomizationFileNames(), e.Name()) {
			return loadKustomization(dir)
		}
	}
	var files []string
	subfolders := false
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.Name() == "Chart.yaml" {
			return nil, exitcode.BadInputf("folder %s is a Helm chart: render it first: helm template RELEASE %s | rollguard deploy -f -", dir, dir)
		}
		// Stat follows symlinks, so a linked manifest counts and a linked folder does not.
		info, err := os.Stat(p)
		if err != nil {
			return nil, exitcode.BadInputf("reading %s: %v", p, oneline.Fold(err.Error()))
		}
		if info.IsDir() {
			subfolders = true
			continue
		}
		if manifestExt(e.Name()) {
			files = append(files, p)
		}
	}
	if len(files) == 0 {
		hint := ""
		if subfolders {
			hint = " (subfolders are not read: pass each with its own -f)"
		}
		return nil, exitcode.BadInputf("folder %s contains no .yaml, .yml or .json files%s", dir, hint)
	}
	var objs []*Object
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		got, err := loadFile(f)
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
	return objs, nil
}

// loadKustomization builds dir with kustomize's default options: load restrictions to the root, no plugins,
// no Helm; exactly what `kubectl apply -k` and `kustomize build` do by default.
func loadKustomization(dir string) ([]*Object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, exitcode.BadInputf("kustomize build %s: %s; fix the kustomization (try `kustomize build %s`)", dir, oneline.Fold(err.Error()), dir)
	}
	src := "kustomize:" + dir
	var objs []*Object
	for _, r := range rm.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			return nil, exitcode.BadInputf("kustomize build %s: encoding %s: %v", dir, r.CurId(), oneline.Fold(err.Error()))
		}
		// Decoding the JSON gives the int64/float64 numbers unstructured requires (kyaml gives int).
		var m map[string]any
		if err := utiljson.Unmarshal(b, &m); err != nil {
			return nil, exitcode.BadInputf("kustomize build %s: decoding %s: %v", dir, r.CurId(), oneline.Fold(err.Error()))
		}
		got, err := objectsOf(src, 0, m, nil)
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
	return objs, nil
}
