package action

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
	"github.com/rollguard/rollguard/internal/track"
)

// The pod-level preflight: the server-side dry-run of a Deployment accepts it even when every pod it would
// create is refused (a LimitRange default that makes the pod invalid, PodSecurity, a missing ServiceAccount,
// a webhook or policy). Those releases would fail only after they were applied, so each workload's pod
// template is built into a Pod and dry-run created in its namespace first; a refusal exits 3 with nothing
// changed, named in the diagnosis' vocabulary (diagnose.Classify).
//
// What a dry-run cannot see: quota for the whole surge (it admits one pod against today's usage), whether
// any node fits the pod (scheduling), image pulls, and admission that depends on the pod's owner. Those stay
// with tracking.

// podRefusal is one workload whose pods the API server would refuse.
type podRefusal struct {
	workload string
	reason   diagnose.Reason
	what     string
	fix      string
}

func (r podRefusal) String() string {
	return fmt.Sprintf("%s: %s: %s (fix: %s)", r.workload, r.reason, r.what, r.fix)
}

// podPreflight dry-run creates one pod per workload of the release. Workloads in namespaces the release
// creates are left to tracking, as are refusals that may pass on a retry and those this identity may not
// ask about (no permission to create pods).
func podPreflight(ctx context.Context, c *kube.Client, objs []*manifest.Object, log *slog.Logger) error {
	created := map[string]bool{}
	accounts := map[string]bool{}
	for _, o := range objs {
		switch {
		case o.GetKind() == "Namespace" && o.GroupVersionKind().Group == "":
			created[o.GetName()] = true
		case o.GetKind() == "ServiceAccount" && o.GroupVersionKind().Group == "":
			accounts[o.GetNamespace()+"/"+o.GetName()] = true
		}
	}
	// One dry-run per workload, a bounded number at a time; refusals are reported in apply order.
	refusals := make([]*podRefusal, len(objs))
	var mayNotCreate atomic.Bool
	err := c.ForEach(ctx, len(objs), func(ctx context.Context, i int) error {
		o := objs[i]
		if !track.Trackable(o.GroupVersionKind().GroupKind()) || created[o.GetNamespace()] || mayNotCreate.Load() {
			return nil
		}
		r, err := podRefused(ctx, c, o, accounts, log)
		if errors.Is(err, errMayNotCreatePods) {
			mayNotCreate.Store(true)
			return nil
		}
		refusals[i] = r
		return err
	})
	if err != nil {
		return err
	}
	if mayNotCreate.Load() {
		log.Debug("pod preflight skipped: this identity may not create pods")
		return nil
	}
	var refused []podRefusal
	for _, r := range refusals {
		if r != nil {
			refused = append(refused, *r)
		}
	}
	if len(refused) == 0 {
		return nil
	}
	lines := make([]string, len(refused))
	for i, r := range refused {
		lines[i] = r.String()
	}
	return exitcode.BadInputf("preflight: the cluster would refuse the pods of %s; nothing was applied", strings.Join(lines, "; "))
}

// errMayNotCreatePods says the identity may not create pods, so no dry-run can judge them.
var errMayNotCreatePods = errors.New("this identity may not create pods")

// podRefused dry-run creates the pod of one workload and returns why the cluster would refuse it, or nil.
func podRefused(ctx context.Context, c *kube.Client, o *manifest.Object, accounts map[string]bool, log *slog.Logger) (*podRefusal, error) {
	pod, err := podOf(o.Unstructured)
	if err != nil {
		return nil, exitcode.BadInputf("%s: reading the pod template of %s: %v", o.Source, o, err)
	}
	err = c.DryRunPod(ctx, pod)
	if err == nil {
		return nil, nil
	}
	if apierrors.IsForbidden(err) && strings.Contains(err.Error(), `cannot create resource "pods"`) {
		return nil, errMayNotCreatePods
	}
	reason, what, fix, lasting, ok := diagnose.Classify(err.Error(), pod.Namespace)
	switch {
	case !ok || !lasting:
		log.Warn("pod preflight could not judge a workload's pods; tracking will", "workload", o.String(), "error", err)
		return nil, nil
	case reason == diagnose.PermissionDenied && accounts[pod.Namespace+"/"+pod.Spec.ServiceAccountName] &&
		strings.Contains(what, "ServiceAccount"):
		return nil, nil // the release brings the ServiceAccount
	case reason == diagnose.QuotaExceeded:
		blocks, err := quotaBlocks(ctx, c, o.Unstructured)
		if err != nil {
			return nil, err
		}
		if !blocks {
			log.Info("quota is full, but this rollout replaces pods in place", "workload", o.String())
			return nil, nil
		}
	}
	return &podRefusal{workload: kube.Ref(o.Unstructured), reason: reason, what: what, fix: fix}, nil
}

// podOf builds the Pod a workload's controller would create from its template.
func podOf(u *unstructured.Unstructured) (*corev1.Pod, error) {
	raw, found, err := unstructured.NestedMap(u.Object, "spec", "template")
	if err != nil || !found {
		return nil, fmt.Errorf("no spec.template (%v)", err)
	}
	var tmpl corev1.PodTemplateSpec
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &tmpl); err != nil {
		return nil, err
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: u.GetName() + "-rollguard-preflight-",
			Namespace:    u.GetNamespace(),
			Labels:       tmpl.Labels,
			Annotations:  tmpl.Annotations,
		},
		Spec: tmpl.Spec,
	}, nil
}

// quotaBlocks judges a quota refusal against the rollout strategy: a full quota blocks a rollout that must
// add a pod before removing one (a new workload; a Deployment with maxSurge > 0 and maxUnavailable 0), not
// one that replaces pods in place (Recreate, maxUnavailable > 0, StatefulSets, DaemonSets), and not a
// release that leaves the pod template as it is (no rollout at all). When unsure it does not block: a
// refusal of a release that would have rolled out is worse than a QuotaExceeded seen while tracking.
func quotaBlocks(ctx context.Context, c *kube.Client, u *unstructured.Unstructured) (bool, error) {
	live, err := c.Get(ctx, u)
	if err != nil || live == nil {
		return live == nil && err == nil, err
	}
	if u.GetKind() != "Deployment" {
		return false, nil
	}
	next, err := c.Apply(ctx, u, true)
	if err != nil {
		return false, nil // validation already accepted it; do not refuse on a second opinion
	}
	var now, then appsv1.Deployment
	if runtime.DefaultUnstructuredConverter.FromUnstructured(live.Object, &now) != nil ||
		runtime.DefaultUnstructuredConverter.FromUnstructured(next.Object, &then) != nil {
		return false, nil
	}
	if apiequality.Semantic.DeepEqual(now.Spec.Template, then.Spec.Template) {
		return false, nil
	}
	return surgesFirst(&then), nil
}

// surgesFirst is true when a rolling update must create a new pod before it may delete an old one.
func surgesFirst(d *appsv1.Deployment) bool {
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate == nil {
		return false
	}
	replicas := 1
	if d.Spec.Replicas != nil {
		replicas = int(*d.Spec.Replicas)
	}
	surge, err1 := intstr.GetScaledValueFromIntOrPercent(d.Spec.Strategy.RollingUpdate.MaxSurge, replicas, true)
	unavailable, err2 := intstr.GetScaledValueFromIntOrPercent(d.Spec.Strategy.RollingUpdate.MaxUnavailable, replicas, false)
	if err1 != nil || err2 != nil {
		return false
	}
	// The deployment controller turns 0/0 into maxUnavailable 1.
	return surge > 0 && unavailable == 0
}
