// Package access enforces an environment's network allowlist through the integration the cluster uses:
// ingress-nginx annotations on the environment's Ingresses, a Kong ip-restriction plugin, or a
// NetworkPolicy. It only ever writes the allowlist's own objects and fields, never a workload, so changing
// the allowlist restarts nothing.
package access

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
)

// Providers.
const (
	Nginx         = "nginx"
	Kong          = "kong"
	NetworkPolicy = "networkpolicy"
)

// Names and keys rollguard writes. They are part of its contract with the cluster: a later run finds and
// updates exactly these.
const (
	// FieldManager owns the allowlist fields. It differs from kube.FieldManager so a deploy whose manifests
	// do not carry the annotations does not strip them again (server-side apply removes fields a manager
	// stops sending).
	FieldManager = "rollguard-access"

	NginxWhitelistAnnotation = "nginx.ingress.kubernetes.io/whitelist-source-range"
	NginxAllowlistAnnotation = "nginx.ingress.kubernetes.io/allowlist-source-range"

	KongPluginName        = "rollguard-ip-restriction"
	KongPluginsAnnotation = "konghq.com/plugins"

	NetworkPolicyName = "rollguard-allow-cidrs"
)

// KongPluginGVK is Kong's plugin resource.
var KongPluginGVK = schema.GroupVersionKind{Group: "configuration.konghq.com", Version: "v1", Kind: "KongPlugin"}

// Policy is an environment's access policy.
type Policy struct {
	// Provider is nginx, kong or networkpolicy.
	Provider string
	// AllowCIDRs are the only client networks allowed in.
	AllowCIDRs []string
	// PodSelector (networkpolicy only) selects the pods the policy guards by label; empty selects every pod
	// in the namespace.
	PodSelector map[string]string
}

// Validate checks a policy without touching anything and returns it with its CIDRs in canonical form
// (masked, deduplicated, in the order given). Errors name the bad value; callers prefix where it came from.
func Validate(p Policy) (Policy, error) {
	switch p.Provider {
	case Nginx, Kong, NetworkPolicy:
	case "":
		return p, fmt.Errorf("provider: required: nginx, kong or networkpolicy")
	default:
		return p, fmt.Errorf("provider: must be nginx, kong or networkpolicy, got %q", p.Provider)
	}
	if len(p.AllowCIDRs) == 0 {
		// An empty allowlist means "allow everyone" to ingress-nginx: refuse it rather than open the door.
		return p, fmt.Errorf("allowCIDRs: required: list at least one CIDR, e.g. 10.0.0.0/8")
	}
	if len(p.PodSelector) > 0 && p.Provider != NetworkPolicy {
		return p, fmt.Errorf("podSelector: only used with provider networkpolicy")
	}
	out := p
	out.AllowCIDRs = nil
	for i, s := range p.AllowCIDRs {
		pfx, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			hint := "write it as ADDRESS/BITS, e.g. 203.0.113.0/24"
			if a, aerr := netip.ParseAddr(strings.TrimSpace(s)); aerr == nil {
				hint = fmt.Sprintf("a single address is %s/%d", a, a.BitLen())
			}
			return p, fmt.Errorf("allowCIDRs[%d]: %q is not a CIDR: %s", i, s, hint)
		}
		c := pfx.Masked().String()
		if !slices.Contains(out.AllowCIDRs, c) {
			out.AllowCIDRs = append(out.AllowCIDRs, c)
		}
	}
	return out, nil
}

// Check verifies, before anything changes, that the cluster serves what the provider needs: Kong's
// KongPlugin CRD for kong. A missing CRD is bad input (exit 3).
func Check(ctx context.Context, c *kube.Client, p Policy) error {
	if p.Provider != Kong {
		return nil
	}
	if _, err := c.Mapping(KongPluginGVK); err != nil {
		if _, unknown := err.(*kube.UnknownKindError); unknown {
			return exitcode.BadInputf("access provider kong: the cluster does not serve KongPlugin (configuration.konghq.com/v1); install Kong's CRDs or choose nginx or networkpolicy")
		}
		return err
	}
	return nil
}

// Apply enforces the policy in namespace ns. It validates the policy first, so a bad CIDR changes nothing.
// nginx and kong act on every Ingress in the namespace: the namespace is the environment, and an Ingress
// left out would be an open door.
func Apply(ctx context.Context, c *kube.Client, ns string, p Policy) error {
	p, err := Validate(p)
	if err != nil {
		return exitcode.BadInputf("access policy: %v", err)
	}
	if err := Check(ctx, c, p); err != nil {
		return err
	}
	switch p.Provider {
	case Nginx:
		return applyNginx(ctx, c, ns, p)
	case Kong:
		return applyKong(ctx, c, ns, p)
	default:
		return applyNetworkPolicy(ctx, c, ns, p)
	}
}

func applyNginx(ctx context.Context, c *kube.Client, ns string, p Policy) error {
	list, err := c.Typed.NetworkingV1().Ingresses(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return kube.Classify(err, "listing Ingresses in "+ns, c.Server)
	}
	value := strings.Join(p.AllowCIDRs, ",")
	for _, ing := range list.Items {
		// Both names: ingress-nginx 1.12+ reads allowlist-source-range, older controllers whitelist-.
		err := annotate(ctx, c, ns, ing.Name, map[string]string{NginxWhitelistAnnotation: value, NginxAllowlistAnnotation: value})
		if err != nil {
			return err
		}
	}
	return nil
}

func applyKong(ctx context.Context, c *kube.Client, ns string, p Policy) error {
	plugin := map[string]any{
		"apiVersion": KongPluginGVK.GroupVersion().String(),
		"kind":       KongPluginGVK.Kind,
		"metadata":   map[string]any{"name": KongPluginName, "namespace": ns},
		"plugin":     "ip-restriction",
		"config":     map[string]any{"allow": p.AllowCIDRs},
	}
	if err := apply(ctx, c, KongPluginGVK, ns, KongPluginName, plugin); err != nil {
		return err
	}
	list, err := c.Typed.NetworkingV1().Ingresses(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return kube.Classify(err, "listing Ingresses in "+ns, c.Server)
	}
	for _, ing := range list.Items {
		merged := MergePlugins(ing.Annotations[KongPluginsAnnotation], KongPluginName)
		if merged == ing.Annotations[KongPluginsAnnotation] {
			continue
		}
		if err := annotate(ctx, c, ns, ing.Name, map[string]string{KongPluginsAnnotation: merged}); err != nil {
			return err
		}
	}
	return nil
}

// MergePlugins adds plugin to a konghq.com/plugins value (comma-separated) unless it is there, keeping the
// plugins the Ingress already uses.
func MergePlugins(existing, plugin string) string {
	var out []string
	for _, p := range strings.Split(existing, ",") {
		if p = strings.TrimSpace(p); p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if !slices.Contains(out, plugin) {
		out = append(out, plugin)
	}
	return strings.Join(out, ",")
}

func applyNetworkPolicy(ctx context.Context, c *kube.Client, ns string, p Policy) error {
	var from []any
	for _, cidr := range p.AllowCIDRs {
		from = append(from, map[string]any{"ipBlock": map[string]any{"cidr": cidr}})
	}
	selector := map[string]any{}
	if len(p.PodSelector) > 0 {
		labels := map[string]any{}
		for k, v := range p.PodSelector {
			labels[k] = v
		}
		selector["matchLabels"] = labels
	}
	gvk := schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"}
	np := map[string]any{
		"apiVersion": gvk.GroupVersion().String(),
		"kind":       gvk.Kind,
		"metadata": map[string]any{"name": NetworkPolicyName, "namespace": ns,
			"labels": map[string]any{"app.kubernetes.io/managed-by": "rollguard"}},
		"spec": map[string]any{
			"podSelector": selector,
			"policyTypes": []any{"Ingress"},
			"ingress":     []any{map[string]any{"from": from}},
		},
	}
	return apply(ctx, c, gvk, ns, NetworkPolicyName, np)
}

// annotate sets only the given annotations on an existing Ingress, as FieldManager. A merge patch, not an
// apply: it cannot create an Ingress deleted since it was listed, and it leaves every other field's owner
// alone.
func annotate(ctx context.Context, c *kube.Client, ns, name string, annotations map[string]string) error {
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	if err != nil {
		return fmt.Errorf("encoding annotations for Ingress %s/%s: %w", ns, name, err)
	}
	_, err = c.Typed.NetworkingV1().Ingresses(ns).Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: FieldManager})
	if apierrors.IsNotFound(err) {
		return nil // deleted since we listed it: nothing left to guard
	}
	if err != nil {
		return kube.Classify(err, fmt.Sprintf("applying the access policy to Ingress/%s/%s", ns, name), c.Server)
	}
	return nil
}

func apply(ctx context.Context, c *kube.Client, gvk schema.GroupVersionKind, ns, name string, obj map[string]any) error {
	doing := fmt.Sprintf("applying the access policy to %s/%s/%s", gvk.Kind, ns, name)
	res, err := c.Resource(gvk, ns)
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	body, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("%s: encoding: %w", doing, err)
	}
	force := true
	_, err = res.Patch(ctx, name, types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: FieldManager, Force: &force, FieldValidation: "Strict"})
	if err != nil {
		return kube.Classify(err, doing, c.Server)
	}
	return nil
}
