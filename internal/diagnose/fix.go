package diagnose

// Fix is the generic remedy for a failure reason. Verdicts carry a concrete one (naming the image, the
// ConfigMap, the quota); this is the fallback and what documentation lists.
func (r Reason) Fix() string {
	switch r {
	case ImagePullFailed:
		return "check that the image exists with that tag and that the nodes can pull it; for a private registry add imagePullSecrets"
	case CrashLoop:
		return "read the crashed container's logs (kubectl logs --previous) and fix its command, configuration or resources"
	case ConfigError:
		return "create the missing ConfigMap/Secret (or key) before deploying, or fix the reference in the pod template"
	case ReadinessFailed:
		return "make the readiness probe pass (check the endpoint it calls), or give the app more time with initialDelaySeconds/failureThreshold"
	case QuotaExceeded:
		return "raise the namespace ResourceQuota, or lower replicas/requests (maxSurge: 0 lets a rolling update fit a full quota)"
	case LimitRangeViolation:
		return "set the containers' requests and limits within the namespace LimitRange"
	case PermissionDenied:
		return "create the missing ServiceAccount, or change the pod template so the namespace's Pod Security level accepts it"
	case AdmissionDenied:
		return "change the pod template so the admission webhook or policy named in the message accepts it (or have its owners change the rule)"
	case PodRejected:
		return "the API server refused the pod built from the template (often invalid only after defaulting): fix what its message names"
	case Unschedulable:
		return "free or add node capacity, or relax the pod's requests, nodeSelector, affinity and tolerations"
	case ProgressDeadlineExceeded:
		return "inspect the new ReplicaSet's pods and events (kubectl describe) for why they do not become available"
	case JobFailed:
		return "read the failed pods' logs (kubectl logs job/NAME); fix the job and deploy again — a job that changed data (a migration) is not undone by a rollback"
	case VerificationFailed:
		return "the release rolled out but its verify Job says it does not work: read the Job's log lines in the evidence, fix the release (or the check) and deploy again"
	case CustomResourceFailed:
		return "the custom resource's controller reported a failure (Stalled, Failed, or Ready=False with an error): fix what its condition message names"
	case Timeout:
		return "the rollout was still progressing at the deadline: check the evidence, or raise the timeout if it is just slow"
	}
	return ""
}
