package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/guard"
)

func newGuardCmd(g *globals) *cobra.Command {
	o := guard.Options{}
	var nf notifyFlags
	cmd := &cobra.Command{
		Use:   "guard",
		Short: "Run the in-cluster guard: every rollout of a guarded workload is followed and healed",
		Long: `guard is a controller that follows every pod-template change of the Deployments, StatefulSets and
DaemonSets it guards, whoever made it (kubectl, Argo CD, Flux, helm), with the same diagnosis as
rollguard deploy. On failure it rolls back to the last healthy revision and proves it healthy, or holds
the rollout for rollguard approve|reject; either way it records a release (rollguard history shows it)
and emits Events on the workload.

What it guards: workloads in namespaces labelled rollguard.dev/guard=enabled, and workloads annotated
rollguard.dev/guard: "enabled" anywhere ("disabled" opts one out). Per workload, by annotation:
rollguard.dev/on-failure (rollback, hold or none), rollguard.dev/timeout, rollguard.dev/app, and the
thresholds rollguard.dev/image-pull-grace, crash-loop-restarts, readiness-slack, unschedulable-grace and
quota-grace.

It never fights: a rollout that a rollguard deploy is tracking (the app's lock is held) is left to it;
scaling, HPA changes and paused Deployments are not rollouts; a template it already rolled back that is
applied again (a GitOps sync) is held with a Warning Event instead of rolled back in a loop.

Run it in the cluster with rollguard guard manifests | kubectl apply -f -, or outside with the usual
kubeconfig flags. Replicas elect a leader (Lease rollguard-guard in --namespace). See docs/guard.md.`,
		Example: `  rollguard guard manifests --image ghcr.io/rollguard/rollguard:v1.0.0 | kubectl apply -f -
  kubectl label namespace shop rollguard.dev/guard=enabled
  rollguard guard --namespace rollguard-system --health-addr :8081 --metrics-addr :8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.QPS <= 0 || o.Burst < 1 {
				return exitcode.BadInputf("--kube-api-qps and --kube-api-burst must be positive, got %g and %d", o.QPS, o.Burst)
			}
			if o.LeaseDuration < 2*time.Second {
				return exitcode.BadInputf("--lease-duration must be at least 2s, got %s", o.LeaseDuration)
			}
			o.Connect = g.connect
			o.Namespace = g.namespace()
			o.Log = g.logger()
			if o.Identity == "" {
				o.Identity = identity()
			}
			var err error
			if o.Notify, err = nf.notifier(g, nil); err != nil {
				return err
			}
			defer o.Notify.Flush()
			o.Dashboard = nf.dashboard
			return guard.Run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.HealthAddr, "health-addr", ":8081", "address of /healthz and /readyz (\"0\" disables them)")
	f.StringVar(&o.MetricsAddr, "metrics-addr", ":8080", "address of the Prometheus /metrics (\"0\" disables it)")
	f.BoolVar(&o.LeaderElection, "leader-elect", true, "elect a leader among replicas with the Lease rollguard-guard in --namespace")
	f.DurationVar(&o.LeaseDuration, "lease-duration", 15*time.Second, "how long a dead leader keeps the lead before a standby takes over")
	f.StringVar(&o.Identity, "identity", "", "this replica's name in the leader Lease and app locks (default: $POD_NAME or host name)")
	f.Float32Var(&o.QPS, "kube-api-qps", guard.DefaultQPS, "the guard's own API requests per second (records, locks, rollbacks), bursting to --kube-api-burst")
	f.IntVar(&o.Burst, "kube-api-burst", guard.DefaultBurst, "burst of the guard's own API requests")
	nf.add(f)
	nf.addDashboard(f)
	cmd.AddCommand(newGuardManifestsCmd(g))
	return cmd
}

// identity names this replica: the pod's name in the cluster, else host, pid and a random suffix.
func identity() string {
	if p := os.Getenv("POD_NAME"); p != "" {
		return p
	}
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

func newGuardManifestsCmd(g *globals) *cobra.Command {
	o := guard.Install{}
	cmd := &cobra.Command{
		Use:   "manifests [--image REF] [--namespace NAMESPACE]",
		Short: "Print the guard's installation: Namespace, ServiceAccount, ClusterRole, Deployment, metrics Service",
		Long: `manifests prints what installs the guard: its Namespace, ServiceAccount, least-privilege ClusterRole
(the same as rollguard rbac --guard) and binding, a Deployment of two replicas (leader election, health
probes, resource requests, non-root, read-only root filesystem) and a Service for /metrics. The same
manifests are the kustomize base deploy/guard/. It reads no cluster.`,
		Example: `  rollguard guard manifests --image ghcr.io/rollguard/rollguard:v1.0.0 | kubectl apply -f -`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Namespace = g.namespace()
			out, err := guard.Manifests(o)
			if err != nil {
				return exitcode.BadInputf("%v", err)
			}
			_, err = fmt.Fprint(g.stdout, out)
			return err
		},
	}
	cmd.Flags().StringVar(&o.Image, "image", guard.DefaultImage, "the rollguard image the guard runs")
	return cmd
}
