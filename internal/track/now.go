package track

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rollguard/rollguard/internal/diagnose"
	"github.com/rollguard/rollguard/internal/kube"
)

// Now diagnoses one live workload as it is now, from one read of its namespace (no watches): what envs,
// the promotion gate and anything else that asks "is it healthy?" get, judged by the same diagnosis core
// and the same objects (Collect) as a tracked deploy. started is when its current release was applied:
// events from before are ignored (zero counts them all).
func Now(ctx context.Context, c *kube.Client, live *unstructured.Unstructured, started time.Time, th diagnose.Thresholds) (diagnose.Verdict, error) {
	var w runtime.Object
	switch live.GetKind() {
	case "Deployment":
		w = &appsv1.Deployment{}
	case "StatefulSet":
		w = &appsv1.StatefulSet{}
	case "DaemonSet":
		w = &appsv1.DaemonSet{}
	case "Job":
		w = &batchv1.Job{}
	default:
		w = live // custom resources are judged from their own status (diagnose/custom.go)
	}
	if w != live {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(live.Object, w); err != nil {
			return diagnose.Verdict{}, fmt.Errorf("reading %s: %w", kube.Ref(live), err)
		}
	}
	ns, doing := live.GetNamespace(), "reading the pods of "+kube.Ref(live)
	var rss []appsv1.ReplicaSet
	if live.GetKind() == "Deployment" {
		list, err := c.Typed.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return diagnose.Verdict{}, kube.Classify(err, doing, c.Server)
		}
		rss = list.Items
	}
	pods, err := c.Typed.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return diagnose.Verdict{}, kube.Classify(err, doing, c.Server)
	}
	events, err := c.Typed.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return diagnose.Verdict{}, kube.Classify(err, "reading the events of "+kube.Ref(live), c.Server)
	}
	in := Collect(w, pointers(rss), pointers(pods.Items), pointers(events.Items))
	in.Now, in.Started = time.Now(), started
	in.Config = newConfigLookup(c).facts(ctx, ns, in, in.Now)
	return diagnose.Diagnose(in, th), nil
}

func pointers[T any](items []T) func(func(*T) bool) {
	return func(yield func(*T) bool) {
		for i := range items {
			if !yield(&items[i]) {
				return
			}
		}
	}
}
