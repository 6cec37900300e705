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
func (c *Client) Autoscaler(ctx context.Context) diagnose.Autoscaler {
	_, err := c.Typed.CoreV1().ConfigMaps("kube-system").Get(ctx, "cluster-autoscaler-status", metav1.GetOptions{})
	switch {
	case err == nil:
		return diagnose.ClusterAutoscaler
	case !apierrors.IsNotFound(err):
		return diagnose.AutoscalerUnknown
	}
	for _, gv := range []string{"karpenter.sh/v1", "karpenter.sh/v1beta1"} {
		list, err := c.Typed.Discovery().ServerResourcesForGroupVersion(gv)
		switch {
		case err == nil:
			for _, r := range list.APIResources {
				if r.Kind == "NodePool" {
					return diagnose.Karpenter
				}
			}
		case !apierrors.IsNotFound(err):
			return diagnose.AutoscalerUnknown
		}
	}
	return diagnose.AutoscalerNone
}
