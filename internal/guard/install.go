package guard

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/rollguard/rollguard/internal/rbac"
)

// Install shapes the manifests `rollguard guard manifests` prints.
type Install struct {
	Image     string
	Namespace string
}

// Installed names.
const (
	DefaultNamespace = "rollguard-system"
	Name             = "rollguard-guard"
	HealthPort       = 8081
	MetricsPort      = 8080
)

// DefaultImage is the image the manifests run unless --image says otherwise.
const DefaultImage = "ghcr.io/rollguard/rollguard:latest"

// Manifests returns the guard's installation as YAML documents: Namespace, ServiceAccount, least-privilege
// ClusterRole and its binding, the Deployment (two replicas, leader election, probes, requests, non-root,
// read-only root filesystem) and the metrics Service.
func Manifests(o Install) (string, error) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Image == "" {
		o.Image = DefaultImage
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return "", fmt.Errorf("--namespace %q is not a namespace name: %s", o.Namespace, strings.Join(errs, "; "))
	}
	labels := map[string]string{"app.kubernetes.io/name": Name, "app.kubernetes.io/managed-by": "rollguard"}
	meta := func(name string, namespaced bool) metav1.ObjectMeta {
		m := metav1.ObjectMeta{Name: name, Labels: labels}
		if namespaced {
			m.Namespace = o.Namespace
		}
		return m
	}
	objs := []any{
		&corev1.Namespace{TypeMeta: tm("v1", "Namespace"), ObjectMeta: meta(o.Namespace, false)},
		&corev1.ServiceAccount{TypeMeta: tm("v1", "ServiceAccount"), ObjectMeta: meta(Name, true)},
		&rbacv1.ClusterRole{TypeMeta: tm("rbac.authorization.k8s.io/v1", "ClusterRole"), ObjectMeta: meta(Name, false), Rules: rbac.GuardRules()},
		&rbacv1.ClusterRoleBinding{
			TypeMeta: tm("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"), ObjectMeta: meta(Name, false),
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: Name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: o.Namespace, Name: Name}},
		},
		deployment(o, meta(Name, true), labels),
		&corev1.Service{
			TypeMeta: tm("v1", "Service"), ObjectMeta: meta(Name+"-metrics", true),
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app.kubernetes.io/name": Name},
				Ports:    []corev1.ServicePort{{Name: "metrics", Port: MetricsPort, TargetPort: intstr.FromString("metrics")}},
			},
		},
	}
	var b strings.Builder
	for i, obj := range objs {
		out, err := yaml.Marshal(obj)
		if err != nil {
			return "", fmt.Errorf("printing the guard's manifests: %w", err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		s := strings.ReplaceAll(string(out), "  creationTimestamp: null\n", "")
		s = strings.ReplaceAll(s, "status: {}\n", "")
		s = strings.ReplaceAll(s, "status:\n  loadBalancer: {}\n", "")
		b.WriteString(s)
	}
	return b.String(), nil
}

func deployment(o Install, meta metav1.ObjectMeta, labels map[string]string) *appsv1.Deployment {
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("health")}},
			PeriodSeconds: 10, TimeoutSeconds: 2}
	}
	return &appsv1.Deployment{
		TypeMeta: tm("apps/v1", "Deployment"), ObjectMeta: meta,
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": Name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: Name,
					SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(65532)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
					Containers: []corev1.Container{{
						Name: "guard", Image: o.Image,
						Args: []string{"guard", "--namespace", o.Namespace, "--health-addr", fmt.Sprintf(":%d", HealthPort),
							"--metrics-addr", fmt.Sprintf(":%d", MetricsPort), "--log-level", "info"},
						Env:            []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
						Ports:          []corev1.ContainerPort{{Name: "health", ContainerPort: HealthPort}, {Name: "metrics", ContainerPort: MetricsPort}},
						LivenessProbe:  probe("/healthz"),
						ReadinessProbe: probe("/readyz"),
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
						},
						SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
					}},
				},
			},
		},
	}
}

func tm(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}
