// Package guard is `rollguard guard`: a controller that follows every rollout of the workloads it guards,
// whoever started it (kubectl, Argo CD, Flux, helm, a teammate), with the same tracker input and
// diagnosis core as `rollguard deploy`, and on failure rolls back with the same rollback (or holds it for
// `rollguard approve`), recording a release in the same store.
//
// The guard keeps no state of its own that a restart would lose: what it decides is in release records
// (found through the rollguard.dev/guard-release annotation and the app's records) and in the workload's
// revisions, so a killed guard or a new leader carries on where the last one stopped.
package guard

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/rollguard/rollguard/internal/action"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/notify"
	"github.com/rollguard/rollguard/internal/release"
	"github.com/rollguard/rollguard/internal/track"
)

// Options configure the guard.
type Options struct {
	Connect action.Connector
	// HealthAddr serves /healthz and /readyz; MetricsAddr serves /metrics. "0" disables one.
	HealthAddr  string
	MetricsAddr string
	// LeaderElection with a Lease named LeaseName in Namespace, so replicas run active/standby.
	LeaderElection bool
	Namespace      string
	LeaseDuration  time.Duration
	// Identity names this replica in the leader Lease and in lock holders (default: host name + random).
	Identity string
	// Tick is how often a followed rollout is re-diagnosed from the caches (default 250ms; no API calls).
	Tick time.Duration
	// QPS and Burst bound the guard's own requests (records, locks, rollbacks) with one client-side token
	// bucket; the time requests wait for it is the metric rollguard_guard_client_throttle_seconds.
	QPS   float32
	Burst int
	Log   *slog.Logger
	// Notify, when set, tells people about failed, rolled back and held rollouts (see internal/notify);
	// Dashboard is the base URL of `rollguard dashboard` for links in approval notifications.
	Notify    *notify.Notifier
	Dashboard string
}

// LeaseName is the leader-election Lease.
const LeaseName = "rollguard-guard"

// DefaultQPS and DefaultBurst bound the guard's own API requests. A failed rollout costs about 28
// (lock twice, records, annotation, restore, Events); at client-go's usual 50 and 100, fifty failing at
// once (one GitOps sync) waited 480 s in all for tokens and the verdicts came seconds late. Idle, the guard
// sends none of these; the API server's priority and fairness still bounds what a storm costs it.
const (
	DefaultQPS   = 200
	DefaultBurst = 500
)

// FieldManager is the field manager of the guard's own writes (its annotation).
const FieldManager = "rollguard-guard"

// Index names of the cache.
const (
	ownerIndex    = "rollguard.dev/controller-uid"
	involvedIndex = "rollguard.dev/involved-uid"
)

// Guard is the running controller.
type Guard struct {
	opts    Options
	kc      *kube.Client
	cache   client.Reader
	events  events.EventRecorder
	store   *release.Store
	metrics *metrics
	log     *slog.Logger
	// ctx lives as long as the guard leads; followers run under it.
	ctx context.Context

	mu    sync.Mutex
	state map[key]*workloadState

	scaler autoscalerMemo
}

// key names one workload.
type key struct{ kind, namespace, name string }

func (k key) String() string { return k.kind + "/" + k.namespace + "/" + k.name }

// workloadState is what the guard remembers about a workload while it runs; all of it can be rebuilt
// from the cluster.
type workloadState struct {
	// baseline is the template hash last seen healthy: a rollback returns there.
	baseline string
	// handled are template hashes whose rollout this guard has already dealt with (followed, held, left
	// to a deploy's decision): reconciling them again must not start a second rollout.
	handled map[string]bool
	// checked says the restart check (an unfinished record named by the annotation) was done.
	checked bool
	follow  *follower
}

// Run starts the guard and blocks until ctx ends or leadership is lost.
func Run(ctx context.Context, opts Options) error {
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Tick == 0 {
		opts.Tick = 250 * time.Millisecond
	}
	if opts.LeaseDuration == 0 {
		opts.LeaseDuration = 15 * time.Second
	}
	if opts.QPS <= 0 {
		opts.QPS, opts.Burst = DefaultQPS, DefaultBurst
	}
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	m := newMetrics()
	// The guard's writes get their own, observed limiter; the manager keeps conn's config, so its
	// watches and the leader Lease renewals never queue behind a burst of rollbacks.
	kc, err := conn.WithRateLimit(opts.QPS, opts.Burst, func(d time.Duration) { m.throttle.Observe(d.Seconds()) })
	if err != nil {
		return err
	}
	if opts.Namespace == "" {
		opts.Namespace = kc.Namespace
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("building the guard's scheme: %w", err)
	}
	renew := opts.LeaseDuration * 2 / 3
	retry := opts.LeaseDuration / 5
	mgr, err := ctrl.NewManager(conn.Config, ctrl.Options{
		Scheme:                        scheme,
		Logger:                        logrFor(opts.Log),
		HealthProbeBindAddress:        opts.HealthAddr,
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddr},
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              LeaseName,
		LeaderElectionNamespace:       opts.Namespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &opts.LeaseDuration,
		RenewDeadline:                 &renew,
		RetryPeriod:                   &retry,
		Cache: cache.Options{
			// One watch per kind for the whole cluster, holding only what the diagnosis reads.
			DefaultTransform:             track.Trim,
			DefaultUnsafeDisableDeepCopy: ptr(true),
		},
	})
	if err != nil {
		return fmt.Errorf("starting the guard: %w", err)
	}
	g := &Guard{
		opts: opts, kc: kc, cache: mgr.GetCache(), events: mgr.GetEventRecorder("rollguard-guard"),
		store: release.NewStore(kc), metrics: m, log: opts.Log, state: map[key]*workloadState{},
	}
	if err := g.setup(ctx, mgr); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("adding the health check: %w", err)
	}
	// Ready once the caches are filled: a standby replica is ready too (it is ready to take over).
	if err := mgr.AddReadyzCheck("caches", func(r *http.Request) error {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return fmt.Errorf("caches not synced yet")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("adding the readiness check: %w", err)
	}
	opts.Log.Info("guard starting", "leaderElection", opts.LeaderElection, "namespace", opts.Namespace, "health", opts.HealthAddr, "metrics", opts.MetricsAddr)
	return mgr.Start(ctx)
}

// setup registers the indexes, the controllers (one per workload kind) and the leader-only context.
func (g *Guard) setup(ctx context.Context, mgr manager.Manager) error {
	idx := mgr.GetFieldIndexer()
	for _, o := range []client.Object{&appsv1.ReplicaSet{}, &appsv1.ControllerRevision{}, &corev1.Pod{}} {
		if err := idx.IndexField(ctx, o, ownerIndex, controllerUID); err != nil {
			return fmt.Errorf("indexing %T: %w", o, err)
		}
	}
	if err := idx.IndexField(ctx, &corev1.Event{}, involvedIndex, func(o client.Object) []string {
		return []string{string(o.(*corev1.Event).InvolvedObject.UID)}
	}); err != nil {
		return fmt.Errorf("indexing events: %w", err)
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		g.mu.Lock()
		g.ctx = ctx
		g.mu.Unlock()
		<-ctx.Done()
		return nil
	})); err != nil {
		return fmt.Errorf("adding the guard: %w", err)
	}
	for _, kind := range []string{"Deployment", "StatefulSet", "DaemonSet"} {
		if err := g.controller(mgr, kind); err != nil {
			return err
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
