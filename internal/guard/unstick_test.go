package guard

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestForcedRollbackNeeded(t *testing.T) {
	sts := func(policy appsv1.PodManagementPolicyType, gen, observed int64, update string) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Generation: gen},
			Spec:       appsv1.StatefulSetSpec{PodManagementPolicy: policy},
			Status:     appsv1.StatefulSetStatus{ObservedGeneration: observed, UpdateRevision: update},
		}
	}
	for _, tc := range []struct {
		name string
		sts  *appsv1.StatefulSet
		want bool
	}{
		{"restored template taken", sts(appsv1.OrderedReadyPodManagement, 3, 3, "web-good"), true},
		{"default policy is OrderedReady", sts("", 3, 3, "web-good"), true},
		{"still on the failed revision", sts(appsv1.OrderedReadyPodManagement, 3, 3, "web-bad"), false},
		{"controller has not seen the restore", sts(appsv1.OrderedReadyPodManagement, 3, 2, "web-good"), false},
		{"Parallel replaces its pods itself", sts(appsv1.ParallelPodManagement, 3, 3, "web-good"), false},
	} {
		if got := forcedRollbackNeeded(tc.sts, "web-bad"); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStuckAt(t *testing.T) {
	pod := func(rev string, ready corev1.ConditionStatus, deleting bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{appsv1.ControllerRevisionHashLabelKey: rev}}}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}
		if deleting {
			p.DeletionTimestamp = &metav1.Time{}
		}
		return p
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want bool
	}{
		{"unready on the failed revision", pod("web-bad", corev1.ConditionFalse, false), true},
		{"ready on the failed revision: the rolling update replaces it", pod("web-bad", corev1.ConditionTrue, false), false},
		{"unready on another revision", pod("web-good", corev1.ConditionFalse, false), false},
		{"already being deleted", pod("web-bad", corev1.ConditionFalse, true), false},
	} {
		if got := stuckAt(tc.pod, "web-bad"); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
