//go:build capture

package diagnose

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/rollguard/rollguard/sandbox"
)

// TestCaptureJobs regenerates the Job fixtures: a migration Job that completes, and one whose pod fails
// (the sandbox's job-failure scenario) until the backoff limit is reached.
func TestCaptureJobs(t *testing.T) {
	for _, tc := range []struct {
		dir      string
		scenario string
		done     batchv1.JobConditionType
	}{
		{"job-complete", "", batchv1.JobComplete},
		{"job-failed", sandbox.ScenarioJobFailure, batchv1.JobFailed},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			ctx := context.Background()
			ns := cluster.Namespace(t)
			c := cluster.Client()
			labels := map[string]string{"app": "migrate"}
			if tc.scenario != "" {
				labels[sandbox.ScenarioLabel] = tc.scenario
			}
			job := &batchv1.Job{
				ObjectMeta: metav1.ObjectMeta{Name: "migrate"},
				Spec: batchv1.JobSpec{
					BackoffLimit: ptr.To[int32](1),
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: labels},
						Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
							Containers: []corev1.Container{{Name: "migrate", Image: imageV2}}},
					},
				},
			}
			started := time.Now()
			if _, err := c.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			var s snapshot
			err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
				j, err := c.BatchV1().Jobs(ns).Get(ctx, "migrate", metav1.GetOptions{})
				if err != nil {
					return false, nil
				}
				done := false
				for _, cond := range j.Status.Conditions {
					done = done || cond.Type == tc.done && cond.Status == corev1.ConditionTrue
				}
				if !done {
					return false, nil
				}
				pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					return false, nil
				}
				events, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					return false, nil
				}
				s = snapshot{at: time.Now(), workload: j, pods: pods.Items, events: events.Items}
				return true, nil
			})
			if err != nil {
				t.Fatalf("job never reached %s: %v", tc.done, err)
			}
			if err := s.write("testdata/"+tc.dir, started, ""); err != nil {
				t.Fatal(err)
			}
		})
	}
}
