package kube

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollguard/rollguard/internal/diagnose"
)

// Autoscaler finds out whether the cluster can add nodes for a pod no node fits: cluster-autoscaler
// publishes kube-system/cluster-autoscaler-status (AKS, GKE and self-run ones do), Karpenter serves the
// karpenter.sh NodePool API. Where neither can be read (no permission, the API does not answer) the answer
// is Unknown, which the diagnosis treats as a cluster that may grow: waiting longer never fails a release.
//
// The three lookups are independent and asked at once: the tracker needs the answer before its first
// verdict, and one after another they cost three round trips on the way from the apply to it.
func (c *Client) Autoscaler(ctx context.Context) diagnose.Autoscaler {
	karpenter := []string{"karpenter.sh/v1", "karpenter.sh/v1beta1"}
	status := make(chan error, 1)
	go func() {
		_, err := c.Typed.CoreV1().ConfigMaps("kube-system").Get(ctx, "cluster-autoscaler-status", metav1.GetOptions{})
		status <- err
	}()
	type lookup struct {
		list *metav1.APIResourceList
		err  error
	}
	groups := make([]chan lookup, len(karpenter))
	for i, gv := range karpenter {
		groups[i] = make(chan lookup, 1)
		go func() {
			list, err := c.Typed.Discovery().ServerResourcesForGroupVersion(gv)
			groups[i] <- lookup{list, err}
		}()
	}
	// The answers are read in the order of precedence: the status ConfigMap first, then Karpenter's APIs.
	err := <-status
	switch {
	case err == nil:
		return diagnose.ClusterAutoscaler
	case !apierrors.IsNotFound(err):
		return diagnose.AutoscalerUnknown
	}
	for _, g := range groups {
		l := <-g
		switch {
		case l.err == nil:
			for _, r := range l.list.APIResources {
				if r.Kind == "NodePool" {
					return diagnose.Karpenter
				}
			}
		case !apierrors.IsNotFound(l.err):
			return diagnose.AutoscalerUnknown
		}
	}
	return diagnose.AutoscalerNone
}
