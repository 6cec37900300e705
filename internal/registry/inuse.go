package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/revision"
)

// InUse lists the images a cluster runs or can roll back to, in namespace ("" for all namespaces): what pods
// run (their spec and the digest the kubelet reports), and the pod templates of Deployments, StatefulSets,
// DaemonSets, Jobs, CronJobs and every ReplicaSet — old ReplicaSets are what `kubectl rollout undo` restores.
// StatefulSet and DaemonSet history lives in ControllerRevisions, which are read too.
func InUse(ctx context.Context, c *kube.Client, namespace string) ([]Protection, error) {
	cs := c.Typed
	var out []Protection
	opts := metav1.ListOptions{}
	where := "namespace " + namespace
	if namespace == "" {
		where = "all namespaces"
	}
	fail := func(kind string, err error) error {
		return kube.Classify(err, "listing "+kind+" in "+where+" to protect the images in use", c.Server)
	}

	pods, err := cs.CoreV1().Pods(namespace).List(ctx, opts)
	if err != nil {
		return nil, fail("pods", err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		out = append(out, PodSpecImages("running in pod "+p.Namespace+"/"+p.Name, &p.Spec)...)
		out = append(out, PodStatusImages("running in pod "+p.Namespace+"/"+p.Name, &p.Status)...)
	}
	deps, err := cs.AppsV1().Deployments(namespace).List(ctx, opts)
	if err != nil {
		return nil, fail("deployments", err)
	}
	for _, d := range deps.Items {
		out = append(out, PodSpecImages("template of Deployment "+d.Namespace+"/"+d.Name, &d.Spec.Template.Spec)...)
	}
	rss, err := cs.AppsV1().ReplicaSets(namespace).List(ctx, opts)
	if err != nil {
		return nil, fail("replicasets", err)
	}
	for _, rs := range rss.Items {
		why := "template of ReplicaSet " + rs.Namespace + "/" + rs.Name
		if rev := rs.Annotations[revision.Annotation]; rev != "" {
			why += " (revision " + rev + ", a rollout undo target)"
		}
		out = append(out, PodSpecImages(why, &rs.Spec.Template.Spec)...)
	}
	sts, err := cs.AppsV1().StatefulSets(namespace).List(ctx, opts)
	if err != nil {
		return nil, fail("statefulsets", err)
	}
	for _, s := range sts.Items {
		out = append(out, PodSpecImages("template of StatefulSet "+s.Namespace+"/"+s.Name, &s.Spec.Template.Spec)...)
	}
	dss, err := cs.AppsV1().DaemonSets(namespace).List(ctx, opts)
	if err != nil {
		return nil, fail("daemonsets", err)
	}
	for _, d := range dss.Items {
		out = append(out, PodSpecImages("template of DaemonSet "+d.Namespace+"/"+d.Name, &d.Spec.Template.Spec)...)
	}
	jobs, err := cs.BatchV1().Jobs(namespace).List(ctx, opts)
	if err != nil {
		return nil, fail("jobs", err)
	}
	for _, j := range jobs.Items {
		out = append(out, PodSpecImages("template of Job "+j.Namespace+"/"+j.Name, &j.Spec.Template.Spec)...)
	}
	cjs, err := cs.BatchV1().CronJobs(namespace).List(ctx, opts)
	if err != nil {
		return nil, fail("cronjobs", err)
	}
	for _, c := range cjs.Items {
		out = append(out, PodSpecImages("template of CronJob "+c.Namespace+"/"+c.Name, &c.Spec.JobTemplate.Spec.Template.Spec)...)
	}
	// Rollout history of StatefulSets and DaemonSets: each ControllerRevision holds an old pod template.
	revs, err := cs.AppsV1().ControllerRevisions(namespace).List(ctx, opts)
	if err != nil {
		return nil, fail("controllerrevisions", err)
	}
	for i := range revs.Items {
		r := &revs.Items[i]
		t, err := revision.Template(r)
		if len(r.Data.Raw) == 0 || err != nil {
			continue
		}
		why := fmt.Sprintf("ControllerRevision %s/%s (revision %d, a rollout undo target)", r.Namespace, r.Name, r.Revision)
		out = append(out, PodSpecImages(why, &t.Spec)...)
	}
	return out, nil
}

// PodSpecImages returns a protection for each container, init container and ephemeral container image.
// References are made fully qualified ("nginx" → index.docker.io/library/nginx:latest) so they are never
// mistaken for a bare tag of the pruned repository.
func PodSpecImages(why string, spec *corev1.PodSpec) []Protection {
	var out []Protection
	add := func(image string) {
		if ref, err := name.ParseReference(image); err == nil {
			out = append(out, Protection{Ref: ref.Name(), Why: why})
		}
	}
	for _, c := range spec.InitContainers {
		add(c.Image)
	}
	for _, c := range spec.Containers {
		add(c.Image)
	}
	for _, c := range spec.EphemeralContainers {
		add(c.Image)
	}
	return out
}

// PodStatusImages returns the digests the kubelet reports as running (imageID "docker-pullable://REPO@DIGEST"
// or "REPO@DIGEST"); a tag may have moved since the pod started, the digest has not. IDs without a repository
// (a local image ID) say nothing about a registry and are skipped.
func PodStatusImages(why string, st *corev1.PodStatus) []Protection {
	var out []Protection
	for _, list := range [][]corev1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses, st.EphemeralContainerStatuses} {
		for _, c := range list {
			id := strings.TrimPrefix(c.ImageID, "docker-pullable://")
			if !strings.Contains(id, "@") {
				continue
			}
			if d, err := name.NewDigest(id); err == nil {
				out = append(out, Protection{Ref: d.Name(), Why: why})
			}
		}
	}
	return out
}
