package manifest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rollguard/rollguard/internal/exitcode"
)

// objectsOfKinds builds one minimal object per "apiVersion/Kind name" entry, e.g. "apps/v1/Deployment web".
func objectsOfKinds(t *testing.T, specs ...string) []*Object {
	t.Helper()
	var docs []string
	for _, s := range specs {
		gvk, name, _ := strings.Cut(s, " ")
		i := strings.LastIndex(gvk, "/")
		docs = append(docs, fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata:\n  name: %s\n", gvk[:i], gvk[i+1:], name))
	}
	objs, err := Decode("test.yaml", []byte(strings.Join(docs, "---\n")))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func names(objs []*Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.GetKind() + "/" + o.GetName()
	}
	return out
}

func TestOrder(t *testing.T) {
	in := objectsOfKinds(t,
		"example.com/v1/Widget w",
		"autoscaling/v2/HorizontalPodAutoscaler web",
		"networking.k8s.io/v1/Ingress web",
		"apps/v1/Deployment web",
		"serving.knative.dev/v1/Service knative", // a custom resource, despite its kind
		"v1/Service web",
		"v1/PersistentVolumeClaim data",
		"v1/Secret creds",
		"v1/ConfigMap config",
		"rbac.authorization.k8s.io/v1/RoleBinding rb",
		"rbac.authorization.k8s.io/v1/Role r",
		"v1/ServiceAccount sa",
		"apiextensions.k8s.io/v1/CustomResourceDefinition widgets.example.com",
		"batch/v1/Job migrate",
		"policy/v1/PodDisruptionBudget web",
		"v1/Namespace shop",
		"apps/v1/StatefulSet db",
	)
	want := []string{
		"Namespace/shop",
		"CustomResourceDefinition/widgets.example.com",
		"ServiceAccount/sa",
		"Role/r",
		"RoleBinding/rb",
		"Secret/creds", "ConfigMap/config", // same rank: input order kept
		"PersistentVolumeClaim/data",
		"Service/web",
		"Deployment/web", "Job/migrate", "StatefulSet/db",
		"Ingress/web",
		"HorizontalPodAutoscaler/web", "PodDisruptionBudget/web",
		"Widget/w", "Service/knative",
	}
	inNames := names(in)
	if got := names(Order(in)); !slices.Equal(got, want) {
		t.Errorf("Order:\n got %q\nwant %q", got, want)
	}
	if !slices.Equal(names(in), inNames) {
		t.Error("Order changed its input")
	}
	var groups [][]string
	for _, g := range Groups(Order(in)) {
		groups = append(groups, names(g))
	}
	wantGroups := [][]string{
		{"Namespace/shop"}, {"CustomResourceDefinition/widgets.example.com"}, {"ServiceAccount/sa"}, {"Role/r"},
		{"RoleBinding/rb"}, {"Secret/creds", "ConfigMap/config"}, {"PersistentVolumeClaim/data"}, {"Service/web"},
		{"Deployment/web", "Job/migrate", "StatefulSet/db"}, {"Ingress/web"},
		{"HorizontalPodAutoscaler/web", "PodDisruptionBudget/web"}, {"Widget/w", "Service/knative"},
	}
	if !slices.EqualFunc(groups, wantGroups, slices.Equal) {
		t.Errorf("Groups:\n got %q\nwant %q", groups, wantGroups)
	}
	slices.Reverse(want)
	if got := names(DeleteOrder(in)); !slices.Equal(got, want) {
		t.Errorf("DeleteOrder:\n got %q\nwant %q", got, want)
	}
}

const podsYAML = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers:
        - {name: migrate, image: registry.example.com/web:1.0.0}
      containers:
        - {name: web, image: registry.example.com/web:1.0.0}
        - {name: proxy, image: envoyproxy/envoy:v1.31.0}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - {name: report, image: registry.example.com/report:2.0.0}
---
apiVersion: v1
kind: Pod
metadata: {name: debug}
spec:
  containers:
    - {name: web, image: busybox:1.37}
---
apiVersion: example.com/v1
kind: Deployment
metadata: {name: not-apps}
spec:
  template:
    spec:
      containers:
        - {name: web, image: untouched}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: config}
`

func TestSetImages(t *testing.T) {
	tests := []struct {
		name  string
		specs []string
		want  [][]string // per object with a pod spec: Deployment, CronJob, Pod, custom Deployment
	}{
		{
			name:  "no specs change nothing",
			specs: nil,
			want: [][]string{
				{"migrate=registry.example.com/web:1.0.0", "web=registry.example.com/web:1.0.0", "proxy=envoyproxy/envoy:v1.31.0"},
				{"report=registry.example.com/report:2.0.0"},
				{"web=busybox:1.37"},
			},
		},
		{
			name:  "by container name, in every object, init containers included",
			specs: []string{"web=registry.example.com/web:1.2.3", "migrate=registry.example.com/web:1.2.3", "report=localhost:5000/report@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
			want: [][]string{
				{"migrate=registry.example.com/web:1.2.3", "web=registry.example.com/web:1.2.3", "proxy=envoyproxy/envoy:v1.31.0"},
				{"report=localhost:5000/report@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
				{"web=registry.example.com/web:1.2.3"},
			},
		},
		{
			name:  "star sets every container, a named spec wins",
			specs: []string{"proxy=envoyproxy/envoy:v1.32.0", "*=registry.example.com/all:3.0.0"},
			want: [][]string{
				{"migrate=registry.example.com/all:3.0.0", "web=registry.example.com/all:3.0.0", "proxy=envoyproxy/envoy:v1.32.0"},
				{"report=registry.example.com/all:3.0.0"},
				{"web=registry.example.com/all:3.0.0"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Decode("pods.yaml", []byte(podsYAML))
			if err != nil {
				t.Fatal(err)
			}
			if err := SetImages(objs, tt.specs); err != nil {
				t.Fatalf("SetImages: %v", err)
			}
			for i, want := range tt.want {
				if got := containerImages(objs[i]); !slices.Equal(got, want) {
					t.Errorf("%s images:\n got %q\nwant %q", objs[i], got, want)
				}
			}
			if img := objs[3].Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"]; img != "untouched" {
				t.Errorf("a custom resource of kind Deployment was edited: image %v", img)
			}
		})
	}
}

func TestSetImagesErrors(t *testing.T) {
	tests := []struct {
		name  string
		specs []string
		want  string
	}{
		{"no equals", []string{"registry.example.com/web:1.2.3"},
			`malformed --image "registry.example.com/web:1.2.3": use CONTAINER=IMAGE (e.g. web=registry.example.com/web:1.2.3) or *=IMAGE for every container`},
		{"empty image", []string{"web="},
			`malformed --image "web=": use CONTAINER=IMAGE (e.g. web=registry.example.com/web:1.2.3) or *=IMAGE for every container`},
		{"empty container", []string{"=web:1"},
			`malformed --image "=web:1": use CONTAINER=IMAGE (e.g. web=registry.example.com/web:1.2.3) or *=IMAGE for every container`},
		{"invalid reference", []string{"web=Registry.example.com/Web:1"},
			`--image "web=Registry.example.com/Web:1": "Registry.example.com/Web:1" is not a valid image reference (could not parse reference: Registry.example.com/Web:1); use e.g. registry.example.com/web:1.2.3`},
		{"container twice", []string{"web=a:1", "web=b:2"},
			`--image names container "web" twice; give each container once`},
		{"unknown container", []string{"web=a:1", "api=b:2"},
			`--image api=b:2: no container named "api" in the manifests; containers are: migrate, proxy, report, web`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Decode("pods.yaml", []byte(podsYAML))
			if err != nil {
				t.Fatal(err)
			}
			err = SetImages(objs, tt.specs)
			if err == nil || err.Error() != tt.want || exitcode.Of(err) != exitcode.BadInput {
				t.Fatalf("SetImages error:\n got %v\nwant %q (exit 3)", err, tt.want)
			}
			if got := containerImages(objs[0]); got[1] != "web=registry.example.com/web:1.0.0" {
				t.Errorf("images changed despite the error: %q", got)
			}
		})
	}
	t.Run("no containers at all", func(t *testing.T) {
		objs := objectsOfKinds(t, "v1/ConfigMap a")
		err := SetImages(objs, []string{"*=a:1"})
		if want := "--image *=a:1: the manifests have no containers to set"; err == nil || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
		err = SetImages(objs, []string{"web=a:1"})
		if want := `--image web=a:1: no container named "web" in the manifests; there are no containers`; err == nil || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
	})
}

func TestCheckImageTags(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		image        string
		allowMutable bool
		mutable      []string
		want         string // "" = accepted
	}{
		{image: "registry.example.com/web:1.2.3"},
		{image: "nginx:1.27"},
		{image: "localhost:5000/app:v2"},
		{image: "registry.example.com/web@" + digest},
		{image: "registry.example.com/web:latest@" + digest}, // a digest pins whatever the tag says
		{image: "localhost:5000/app", want: `image "localhost:5000/app" has no tag or digest, so it means whatever :latest is at pull time; pin a version tag or digest, or pass --allow-mutable-tags`},
		{image: "nginx", want: `image "nginx" has no tag or digest, so it means whatever :latest is at pull time; pin a version tag or digest, or pass --allow-mutable-tags`},
		{image: "nginx:latest", want: `image "nginx:latest" uses the mutable tag "latest"; pin a version tag or digest, or pass --allow-mutable-tags`},
		{image: "registry.example.com:443/team/web:Main", want: `image "registry.example.com:443/team/web:Main" uses the mutable tag "Main"; pin a version tag or digest, or pass --allow-mutable-tags`},
		{image: "ghcr.io/org/app:nightly", want: `image "ghcr.io/org/app:nightly" uses the mutable tag "nightly"; pin a version tag or digest, or pass --allow-mutable-tags`},
		{image: "nginx:latest", allowMutable: true},
		{image: "nginx", allowMutable: true},
		{image: "app:canary", mutable: []string{"canary"}, want: `image "app:canary" uses the mutable tag "canary"; pin a version tag or digest, or pass --allow-mutable-tags`},
		{image: "app:latest", mutable: []string{"canary"}}, // an explicit list replaces the defaults
		{image: "", allowMutable: true, want: "has no image; set image in the manifest or pass --image CONTAINER=IMAGE"},
		{image: "Bad Image", allowMutable: true, want: `image "Bad Image" is not a valid image reference (could not parse reference: Bad Image); fix the image`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s allow=%v %v", tt.image, tt.allowMutable, tt.mutable), func(t *testing.T) {
			objs, err := Decode("web.yaml", []byte(fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: prod}\nspec:\n  template:\n    spec:\n      containers:\n        - {name: web, image: %q}\n", tt.image)))
			if err != nil {
				t.Fatal(err)
			}
			err = CheckImageTags(objs, tt.allowMutable, tt.mutable)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("accepted, want %q", tt.want)
			case tt.want != "":
				if want := `Deployment prod/web (web.yaml:1), container "web": ` + tt.want; err.Error() != want || exitcode.Of(err) != exitcode.BadInput {
					t.Errorf("error:\n got %q\nwant %q (exit 3)", err, want)
				}
			}
		})
	}
	t.Run("several problems are counted", func(t *testing.T) {
		objs, err := Decode("pods.yaml", []byte(podsYAML))
		if err != nil {
			t.Fatal(err)
		}
		if err := SetImages(objs, []string{"*=app:latest"}); err != nil {
			t.Fatal(err)
		}
		err = CheckImageTags(objs, false, nil)
		if err == nil || !strings.HasPrefix(err.Error(), `Deployment web (pods.yaml:1), container "migrate": image "app:latest" uses the mutable tag "latest"`) ||
			!strings.HasSuffix(err.Error(), "(and 4 more)") {
			t.Errorf("got %v", err)
		}
	})
}

func TestDefaultNamespace(t *testing.T) {
	scope := func(gvk schema.GroupVersionKind) (bool, error) {
		switch gvk.Kind {
		case "Namespace", "ClusterRole":
			return false, nil
		case "Widget":
			return false, errors.New("no matches for kind Widget")
		}
		return true, nil
	}
	load := func(t *testing.T, y string) []*Object {
		objs, err := Decode("ns.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	const mixed = `apiVersion: v1
kind: Namespace
metadata: {name: shop, namespace: ignored}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b, namespace: other}
`
	t.Run("fills and clears", func(t *testing.T) {
		objs := load(t, mixed)
		if err := DefaultNamespace(objs, "shop", false, scope); err != nil {
			t.Fatal(err)
		}
		if got, want := describe(objs), []string{"Namespace shop @ ns.yaml:1", "ConfigMap shop/a @ ns.yaml:5", "ConfigMap other/b @ ns.yaml:9"}; !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("empty means default", func(t *testing.T) {
		objs := load(t, mixed)
		if err := DefaultNamespace(objs, "", false, scope); err != nil {
			t.Fatal(err)
		}
		if got := objs[1].GetNamespace(); got != "default" {
			t.Errorf("namespace %q, want default", got)
		}
	})
	t.Run("explicit namespace conflicts", func(t *testing.T) {
		err := DefaultNamespace(load(t, mixed), "shop", true, scope)
		want := `ns.yaml:9: ConfigMap other/b is in namespace "other" but --namespace shop was given; remove metadata.namespace from the manifest or pass --namespace other`
		if err == nil || err.Error() != want || exitcode.Of(err) != exitcode.BadInput {
			t.Errorf("got %v, want %q (exit 3)", err, want)
		}
	})
	t.Run("scope errors are returned wrapped", func(t *testing.T) {
		err := DefaultNamespace(load(t, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"), "shop", false, scope)
		if err == nil || err.Error() != "ns.yaml:1: Widget w: no matches for kind Widget" || exitcode.Of(err) == exitcode.BadInput {
			t.Errorf("got %v (exit %d)", err, exitcode.Of(err))
		}
	})
	t.Run("duplicates once defaulted", func(t *testing.T) {
		objs := load(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: shop}\n")
		err := DefaultNamespace(objs, "shop", false, scope)
		want := "duplicate object: ConfigMap shop/a is defined at ns.yaml:1 and again at ns.yaml:5; remove one"
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
	})
}

func TestChangeCause(t *testing.T) {
	tests := []struct {
		name     string
		explicit string
		env      map[string]string
		want     string
		wantCI   CI
	}{
		{name: "explicit wins", explicit: "  hotfix for #42 ", env: map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_SHA": "abc"}, want: "hotfix for #42",
			wantCI: CI{Provider: "GitHub Actions", Commit: "abc"}},
		{name: "no CI", env: map[string]string{"HOME": "/root"}, want: ""},
		{
			name: "GitHub Actions re-run of a tag",
			env: map[string]string{
				"GITHUB_ACTIONS": "true", "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
				"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "org/repo", "GITHUB_RUN_ID": "987",
				"GITHUB_RUN_ATTEMPT": "2", "GITHUB_ACTOR": "alice", "GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v1.2.3",
				"GITHUB_RUN_NUMBER": "17", "GITHUB_TOKEN": "ghs_secret",
			},
			want: "GitHub Actions: commit 0123456789ab, version v1.2.3, by alice, https://github.com/org/repo/actions/runs/987/attempts/2",
			wantCI: CI{Provider: "GitHub Actions", Commit: "0123456789abcdef0123456789abcdef01234567", Actor: "alice", Version: "v1.2.3",
				PipelineURL: "https://github.com/org/repo/actions/runs/987/attempts/2"},
		},
		{
			name: "GitHub Actions branch build uses the run number",
			env: map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_SHA": "abc", "GITHUB_REF_TYPE": "branch", "GITHUB_REF_NAME": "main",
				"GITHUB_RUN_NUMBER": "17", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_SERVER_URL": "https://github.example.com/", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "5"},
			want:   "GitHub Actions: commit abc, version 17, https://github.example.com/o/r/actions/runs/5",
			wantCI: CI{Provider: "GitHub Actions", Commit: "abc", Version: "17", PipelineURL: "https://github.example.com/o/r/actions/runs/5"},
		},
		{
			name: "Azure Pipelines",
			env: map[string]string{
				"TF_BUILD": "True", "BUILD_SOURCEVERSION": "fedcba9876543210fedcba9876543210fedcba98", "BUILD_BUILDNUMBER": "20260101.3",
				"SYSTEM_COLLECTIONURI": "https://dev.azure.com/contoso/", "SYSTEM_TEAMPROJECT": "Web Shop", "BUILD_BUILDID": "1234",
				"BUILD_REQUESTEDFOR": "Bob Smith", "SYSTEM_ACCESSTOKEN": "secret",
			},
			want: "Azure Pipelines: commit fedcba987654, version 20260101.3, by Bob Smith, https://dev.azure.com/contoso/Web%20Shop/_build/results?buildId=1234",
			wantCI: CI{Provider: "Azure Pipelines", Commit: "fedcba9876543210fedcba9876543210fedcba98", Version: "20260101.3", Actor: "Bob Smith",
				PipelineURL: "https://dev.azure.com/contoso/Web%20Shop/_build/results?buildId=1234"},
		},
		{
			name: "GitLab CI drops credentials from URLs",
			env: map[string]string{
				"GITLAB_CI": "true", "CI_COMMIT_SHA": "1111111111111111111111111111111111111111", "CI_PIPELINE_IID": "88",
				"CI_PIPELINE_URL": "https://gitlab-ci-token:glcbt-secret@gitlab.example.com/g/p/-/pipelines/4242", "GITLAB_USER_LOGIN": "carol\n",
				"CI_JOB_TOKEN": "secret",
			},
			want: "GitLab CI: commit 111111111111, version 88, by carol, https://gitlab.example.com/g/p/-/pipelines/4242",
			wantCI: CI{Provider: "GitLab CI", Commit: "1111111111111111111111111111111111111111", Version: "88", Actor: "carol",
				PipelineURL: "https://gitlab.example.com/g/p/-/pipelines/4242"},
		},
		{
			name:   "GitLab tag and a non-http URL",
			env:    map[string]string{"GITLAB_CI": "true", "CI_COMMIT_TAG": "v2.0.0", "CI_PIPELINE_IID": "88", "CI_PIPELINE_URL": "javascript:alert(1)"},
			want:   "GitLab CI: version v2.0.0",
			wantCI: CI{Provider: "GitLab CI", Version: "v2.0.0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := func(k string) string { return tt.env[k] }
			if got := ChangeCause(tt.explicit, env); got != tt.want {
				t.Errorf("ChangeCause:\n got %q\nwant %q", got, tt.want)
			}
			if got := DetectCI(env); got != tt.wantCI {
				t.Errorf("DetectCI:\n got %+v\nwant %+v", got, tt.wantCI)
			}
			if strings.Contains(ChangeCause(tt.explicit, env), "secret") {
				t.Error("change cause leaks a secret")
			}
		})
	}
}

func TestSetChangeCause(t *testing.T) {
	objs, err := Decode("pods.yaml", []byte(podsYAML+"---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n  annotations: {team: data}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := SetChangeCause(objs, ""); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if _, ok := o.GetAnnotations()[ChangeCauseAnnotation]; ok {
			t.Fatalf("empty cause set on %s", o)
		}
	}
	if err := SetChangeCause(objs, "release 1.2.3"); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		_, got := o.GetAnnotations()[ChangeCauseAnnotation]
		want := slices.Contains([]string{"Deployment/web", "CronJob/report", "StatefulSet/db"}, o.GetKind()+"/"+o.GetName())
		if got != want {
			t.Errorf("%s: change cause set = %v, want %v", o, got, want)
		}
	}
	if got := objs[5].GetAnnotations()["team"]; got != "data" {
		t.Errorf("existing annotation lost: %v", objs[5].GetAnnotations())
	}
	tmpl := objs[0].Object["spec"].(map[string]any)["template"].(map[string]any)
	if _, ok := tmpl["metadata"]; ok {
		t.Errorf("pod template touched: %v", tmpl["metadata"])
	}

	bad, err := Decode("bad.yaml", []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations: [a]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := SetChangeCause(bad, "x"); err == nil || exitcode.Of(err) != exitcode.BadInput {
		t.Errorf("annotations that are not a mapping: got %v, want a bad-input error", err)
	}
}
