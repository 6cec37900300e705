package manifest

import (
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rollguard/rollguard/internal/exitcode"
)

// ChangeCauseAnnotation is the annotation `kubectl rollout history` shows as CHANGE-CAUSE.
const ChangeCauseAnnotation = "kubernetes.io/change-cause"

// CI describes the pipeline run that deploys, read from the CI system's own variables. Only identifying,
// non-secret values are read (never tokens, and credentials embedded in URLs are dropped).
type CI struct {
	// Provider is "GitHub Actions", "Azure Pipelines" or "GitLab CI"; empty outside a known CI.
	Provider string
	// Commit is the full commit SHA being deployed.
	Commit string
	// PipelineURL links to the run.
	PipelineURL string
	// Actor is who triggered the run.
	Actor string
	// Version labels the run: the git tag for tag builds on GitHub and GitLab, else the run number
	// (GitHub) or pipeline IID (GitLab); on Azure the build number, which teams usually set to the version.
	Version string
}

// DetectCI reads the CI run from environment variables through env (os.Getenv in production).
func DetectCI(env func(string) string) CI {
	get := func(k string) string { return clean(env(k)) }
	switch {
	case get("GITHUB_ACTIONS") == "true":
		ci := CI{Provider: "GitHub Actions", Commit: get("GITHUB_SHA"), Actor: get("GITHUB_ACTOR")}
		server, repo, run := get("GITHUB_SERVER_URL"), get("GITHUB_REPOSITORY"), get("GITHUB_RUN_ID")
		if server != "" && repo != "" && run != "" {
			ci.PipelineURL = strings.TrimSuffix(server, "/") + "/" + repo + "/actions/runs/" + run
			// A re-run keeps the run id; the attempt says which logs belong to this deploy.
			if a, err := strconv.Atoi(get("GITHUB_RUN_ATTEMPT")); err == nil && a > 1 {
				ci.PipelineURL += "/attempts/" + strconv.Itoa(a)
			}
		}
		if get("GITHUB_REF_TYPE") == "tag" {
			ci.Version = get("GITHUB_REF_NAME")
		} else {
			ci.Version = get("GITHUB_RUN_NUMBER")
		}
		ci.PipelineURL = safeURL(ci.PipelineURL)
		return ci
	case strings.EqualFold(get("TF_BUILD"), "true"):
		ci := CI{Provider: "Azure Pipelines", Commit: get("BUILD_SOURCEVERSION"), Actor: get("BUILD_REQUESTEDFOR"), Version: get("BUILD_BUILDNUMBER")}
		coll, project, id := get("SYSTEM_COLLECTIONURI"), get("SYSTEM_TEAMPROJECT"), get("BUILD_BUILDID")
		if coll != "" && project != "" && id != "" {
			ci.PipelineURL = safeURL(strings.TrimSuffix(coll, "/") + "/" + url.PathEscape(project) + "/_build/results?buildId=" + url.QueryEscape(id))
		}
		return ci
	case get("GITLAB_CI") == "true":
		ci := CI{Provider: "GitLab CI", Commit: get("CI_COMMIT_SHA"), PipelineURL: safeURL(get("CI_PIPELINE_URL")), Actor: get("GITLAB_USER_LOGIN")}
		if ci.Version = get("CI_COMMIT_TAG"); ci.Version == "" {
			ci.Version = get("CI_PIPELINE_IID")
		}
		return ci
	}
	return CI{}
}

// ChangeCause is the change cause recorded with a release: explicit (from --change-cause) when given,
// otherwise a summary of the CI run, e.g. "GitHub Actions: commit 0123456789ab, version v1.2.3, by alice,
// https://github.com/org/repo/actions/runs/42"; empty outside a known CI.
func ChangeCause(explicit string, env func(string) string) string {
	if s := strings.TrimSpace(explicit); s != "" {
		return s
	}
	ci := DetectCI(env)
	if ci.Provider == "" {
		return ""
	}
	var parts []string
	if ci.Commit != "" {
		c := ci.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		parts = append(parts, "commit "+c)
	}
	if ci.Version != "" {
		parts = append(parts, "version "+ci.Version)
	}
	if ci.Actor != "" {
		parts = append(parts, "by "+ci.Actor)
	}
	if ci.PipelineURL != "" {
		parts = append(parts, ci.PipelineURL)
	}
	if len(parts) == 0 {
		return ci.Provider
	}
	return ci.Provider + ": " + strings.Join(parts, ", ")
}

// SetChangeCause records cause in the kubernetes.io/change-cause annotation of every object that has a
// pod template (Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs,
// CronJobs), on the object's own metadata as `kubectl --record` did, never on the pod template: a
// template change would start a rollout by itself. The controllers copy it into the ReplicaSet or
// ControllerRevision so `kubectl rollout history` shows it. An empty cause changes nothing.
func SetChangeCause(objs []*Object, cause string) error {
	if cause == "" {
		return nil
	}
	for _, o := range objs {
		gk := o.groupKind()
		if PodSpecPath(gk) == nil || gk.Group == "" && (gk.Kind == "Pod" || gk.Kind == "PodTemplate") {
			continue
		}
		// Set the one key in place: GetAnnotations would drop every annotation if one value is not a string.
		if err := unstructured.SetNestedField(o.Object, cause, "metadata", "annotations", ChangeCauseAnnotation); err != nil {
			return exitcode.BadInputf("%s: %s metadata.annotations must be a mapping of strings: %v", o.Source, o, err)
		}
	}
	return nil
}

// clean trims a CI value and drops control characters so it stays one printable line.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// safeURL drops user info (a token can hide there, as in GitLab's clone URLs) and refuses non-http URLs.
func safeURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	u.User = nil
	return u.String()
}
