package sandbox

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The autoscaler stands in for cluster-autoscaler on the sandbox's kwok nodes. It speaks the autoscaler's
// protocol as the rest of a cluster sees it: the kube-system/cluster-autoscaler-status ConfigMap, events
// on unschedulable pods from source cluster-autoscaler with its reasons and message formats
// (TriggeredScaleUp "pod triggered scale-up: [{group 1->2 (max: 3)}]", NotTriggerScaleUp "pod didn't
// trigger scale-up: 1 Insufficient cpu"), and new nodes some seconds later. It is the project's own
// protocol-level stand-in, not cluster-autoscaler itself (whose kwok cloud provider would be another
// multi-minute build); its scale-up decision is the simple one of a single node group: a pending pod
// that fits an empty node of the group gets a node, while the group is below its maximum.

// AutoscalerOptions describe the one node group the autoscaler grows.
type AutoscalerOptions struct {
	// Group names the node group ("sandbox-pool").
	Group string
	// CPU and Memory are each new node's capacity ("8", "16Gi").
	CPU, Memory string
	// Max is how many nodes the group may add (default 3).
	Max int
	// ProvisionDelay is the time from TriggeredScaleUp to the node's creation, a VM booting (default 3s).
	ProvisionDelay time.Duration
	// ScanInterval is how often pending pods are looked at (cluster-autoscaler: 10s; default 1s).
	ScanInterval time.Duration
}

// AutoscalerStatusConfigMap is the ConfigMap cluster-autoscaler publishes in kube-system; tools (rollguard
// among them) read its presence as "this cluster can grow".
const AutoscalerStatusConfigMap = "cluster-autoscaler-status"

// StartAutoscaler publishes the autoscaler's status ConfigMap and starts growing the cluster for pods no
// node fits. The returned stop ends it and removes the ConfigMap; the nodes it added stay.
func (c *Cluster) StartAutoscaler(ctx context.Context, opts AutoscalerOptions) (stop func() error, err error) {
	if opts.Group == "" {
		opts.Group = "sandbox-pool"
	}
	if opts.Max <= 0 {
		opts.Max = 3
	}
	if opts.ProvisionDelay <= 0 {
		opts.ProvisionDelay = 3 * time.Second
	}
	if opts.ScanInterval <= 0 {
		opts.ScanInterval = time.Second
	}
	capacity := corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")}
	for name, v := range map[corev1.ResourceName]string{corev1.ResourceCPU: opts.CPU, corev1.ResourceMemory: opts.Memory} {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("sandbox: autoscaler node %s %q: %w", name, v, err)
		}
		capacity[name] = q
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: AutoscalerStatusConfigMap, Namespace: "kube-system"},
		Data:       map[string]string{"status": fmt.Sprintf("autoscalerStatus: Running\nclusterWide:\n  health:\n    status: Healthy\nnodeGroups:\n- name: %s\n  health:\n    status: Healthy\n    nodeCounts:\n      registered:\n        total: 0\n    minSize: 0\n    maxSize: %d\n", opts.Group, opts.Max)},
	}
	if _, err := c.client.CoreV1().ConfigMaps("kube-system").Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("sandbox: publishing the autoscaler status: %w", err)
	}
	a := &autoscaler{c: c, opts: opts, capacity: capacity, seen: map[string]bool{}}
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(opts.ScanInterval)
		defer t.Stop()
		for {
			a.scan(runCtx)
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() error {
		cancel()
		wg.Wait()
		err := c.client.CoreV1().ConfigMaps("kube-system").Delete(context.Background(), AutoscalerStatusConfigMap, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("sandbox: removing the autoscaler status: %w", err)
		}
		return nil
	}, nil
}

type autoscaler struct {
	c        *Cluster
	opts     AutoscalerOptions
	capacity corev1.ResourceList
	added    int
	// seen holds the pods already answered (by UID): one scale-up per pod, one refusal per pod.
	seen map[string]bool
}

// scan answers every pod the scheduler found no node for.
func (a *autoscaler) scan(ctx context.Context) {
	pods, err := a.c.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName="})
	if err != nil {
		return
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if a.seen[string(p.UID)] || p.DeletionTimestamp != nil || !unschedulable(p) {
			continue
		}
		a.seen[string(p.UID)] = true
		if why := a.wontFit(p); why != "" {
			a.event(ctx, p, corev1.EventTypeNormal, "NotTriggerScaleUp", "pod didn't trigger scale-up: "+why)
			continue
		}
		a.added++
		a.event(ctx, p, corev1.EventTypeNormal, "TriggeredScaleUp",
			fmt.Sprintf("pod triggered scale-up: [{%s %d->%d (max: %d)}]", a.opts.Group, a.added-1, a.added, a.opts.Max))
		name := fmt.Sprintf("%s-%d", a.opts.Group, a.added)
		time.AfterFunc(a.opts.ProvisionDelay, func() { a.addNode(name) })
	}
}

func unschedulable(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

// wontFit says, in cluster-autoscaler's words, why a new node of the group would not help the pod; "" when
// it would.
func (a *autoscaler) wontFit(p *corev1.Pod) string {
	labels := a.labels("")
	for k, v := range p.Spec.NodeSelector {
		if labels[k] != v {
			return "1 node(s) didn't match Pod's node affinity/selector"
		}
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		var want resource.Quantity
		for _, ctr := range p.Spec.Containers {
			if q, ok := ctr.Resources.Requests[res]; ok {
				want.Add(q)
			}
		}
		if have := a.capacity[res]; want.Cmp(have) > 0 {
			return "1 Insufficient " + string(res)
		}
	}
	if a.added >= a.opts.Max {
		return "1 max node group size reached"
	}
	return ""
}

func (a *autoscaler) labels(name string) map[string]string {
	l := map[string]string{"type": "kwok", NodeLabel: "kwok", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
		"sandbox.rollguard.dev/node-group": a.opts.Group}
	if name != "" {
		l["kubernetes.io/hostname"] = name
	}
	return l
}

// addNode registers a kwok node of the group; kwok makes it Ready like the sandbox's own.
func (a *autoscaler) addNode(name string) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: a.labels(name), Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"}},
		Status:     corev1.NodeStatus{Capacity: a.capacity, Allocatable: a.capacity},
	}
	if _, err := a.c.client.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		fmt.Fprintf(progress(a.c.opts), "sandbox: autoscaler: adding node %s: %v\n", name, err)
	}
}

// event records what cluster-autoscaler would, on the pod, from source cluster-autoscaler.
func (a *autoscaler) event(ctx context.Context, p *corev1.Pod, typ, reason, msg string) {
	now := metav1.Now()
	e := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: p.Name + ".", Namespace: p.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Name, UID: p.UID,
			ResourceVersion: p.ResourceVersion},
		Type: typ, Reason: reason, Message: msg,
		Source:              corev1.EventSource{Component: "cluster-autoscaler"},
		ReportingController: "cluster-autoscaler", ReportingInstance: "cluster-autoscaler-sandbox",
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if _, err := a.c.client.CoreV1().Events(p.Namespace).Create(ctx, e, metav1.CreateOptions{}); err != nil {
		fmt.Fprintf(progress(a.c.opts), "sandbox: autoscaler: event %s on pod %s/%s: %v\n", reason, p.Namespace, p.Name, err)
	}
}
