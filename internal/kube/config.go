package kube

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollguard/rollguard/internal/diagnose"
)

// ConfigPresent says whether a ConfigMap or Secret (or one key of it) that the kubelet reported missing
// exists now in namespace ns: the diagnosis fails a container still waiting for it soon, and waits for the
// kubelet's retry once it is there. A Secret's values are read only to see its keys and never kept. An
// error (no permission) leaves the answer unknown to the caller.
func (c *Client) ConfigPresent(ctx context.Context, ns string, ref diagnose.ConfigRef) (bool, error) {
	var has func(key string) bool
	var err error
	switch ref.Kind {
	case "ConfigMap":
		cm, e := c.Typed.CoreV1().ConfigMaps(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err = e; err == nil {
			has = func(k string) bool {
				_, text := cm.Data[k]
				_, binary := cm.BinaryData[k]
				return text || binary
			}
		}
	case "Secret":
		s, e := c.Typed.CoreV1().Secrets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err = e; err == nil {
			has = func(k string) bool { _, ok := s.Data[k]; return ok }
		}
	default:
		return false, fmt.Errorf("looking up %s: not a ConfigMap or Secret", ref)
	}
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("looking up %s in namespace %s: %w", ref, ns, err)
	case ref.Key == "":
		return true, nil
	}
	return has(ref.Key), nil
}
