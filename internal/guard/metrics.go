package guard

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// metrics are the guard's Prometheus series, served on /metrics beside controller-runtime's own
// (workqueue depth, reconcile latency, client request counts by verb and code).
type metrics struct {
	rollouts        *prometheus.CounterVec
	rollbacks       *prometheus.CounterVec
	skipped         *prometheus.CounterVec
	held            prometheus.Counter
	knownBad        prometheus.Counter
	active          prometheus.Gauge
	verdict         prometheus.Histogram
	changeToVerdict prometheus.Histogram
	changeToHealthy prometheus.Histogram
	throttle        prometheus.Histogram
}

var latencyBuckets = []float64{0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600}

func newMetrics() *metrics {
	m := &metrics{
		rollouts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rollguard_guard_rollouts_total",
			Help: "Rollouts the guard followed to a verdict, by result: healthy, failed, superseded."}, []string{"result"}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rollguard_guard_rollbacks_total",
			Help: "Rollbacks the guard ran, by result: healthy, failed, left-to-deploy."}, []string{"result"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rollguard_guard_skipped_total",
			Help: "Rollouts the guard left alone, by reason (deploy-lock: a rollguard deploy holds the app's lock)."}, []string{"reason"}),
		held: prometheus.NewCounter(prometheus.CounterOpts{Name: "rollguard_guard_held_total",
			Help: "Failed rollouts held for rollguard approve|reject (policy hold, or a known-bad template)."}),
		knownBad: prometheus.NewCounter(prometheus.CounterOpts{Name: "rollguard_guard_known_bad_reapplied_total",
			Help: "Templates applied again after being rolled back (GitOps loop protection): held, not rolled back again."}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rollguard_guard_active_rollouts",
			Help: "Rollouts being followed now."}),
		verdict: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rollguard_guard_signal_to_verdict_seconds",
			Help: "From the first sign of a failure (an event, a container state) to the guard's failed verdict.", Buckets: latencyBuckets}),
		changeToVerdict: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rollguard_guard_change_to_verdict_seconds",
			Help: "From the pod-template change to the guard's failed verdict.", Buckets: latencyBuckets}),
		changeToHealthy: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rollguard_guard_change_to_rollback_healthy_seconds",
			Help: "From the pod-template change to the rollback proven healthy.", Buckets: latencyBuckets}),
		throttle: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rollguard_guard_client_throttle_seconds",
			Help:    "How long the guard's own API requests waited for its client-side rate limit (--kube-api-qps, --kube-api-burst).",
			Buckets: []float64{0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30}}),
	}
	// controller-runtime serves its registry on the metrics address; a second guard in one process (tests)
	// would register twice, which only the first may do.
	for _, c := range []prometheus.Collector{m.rollouts, m.rollbacks, m.skipped, m.held, m.knownBad, m.active, m.verdict, m.changeToVerdict, m.changeToHealthy, m.throttle} {
		_ = ctrlmetrics.Registry.Register(c)
	}
	return m
}
