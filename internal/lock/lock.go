// Package lock keeps two rollguard runs from changing the same app at once, with a
// coordination.k8s.io Lease per app and namespace (rollguard-lock-<app>).
//
// The holder renews the Lease every TTL/3. A holder that dies stops renewing and its lock expires by
// itself after TTL, so a killed pipeline never leaves the app locked for good (helm's "another operation
// is in progress").
//
// Expiry and clocks: renewTime is written by the holder's clock, not the server's. A waiter therefore
// decides that a lock expired in either of two ways:
//   - observed: the Lease has not changed (same resourceVersion) for a whole lease duration, measured by
//     the waiter's own monotonic clock. No two clocks are compared, so this is immune to skew.
//   - by the clock: renewTime + leaseDuration is before the waiter's time. This lets a run that does not
//     wait (Wait 0) take over a lock whose holder died long ago instead of failing. It can only mistake a
//     live holder for a dead one if the waiter's clock runs ahead of the holder's by more than
//     TTL − TTL/3 (20s with the default TTL), far beyond what NTP-synchronised CI runners drift.
//
// Taking over an expired Lease is an update conditioned on the resourceVersion that was judged expired,
// so when two waiters race exactly one wins.
package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	typedcoord "k8s.io/client-go/kubernetes/typed/coordination/v1"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/release"
)

// DefaultTTL is how long a lock outlives its holder's last renewal when Options.TTL is 0.
const DefaultTTL = 30 * time.Second

// LeaseName is the Lease that locks an app.
func LeaseName(app string) string { return "rollguard-lock-" + app }

// Options tune Acquire.
type Options struct {
	// Wait is how long to wait for a lock another run holds; 0 fails at once.
	Wait time.Duration
	// TTL is how long the lock outlives its holder's last renewal (default 30s; rounded up to seconds).
	TTL time.Duration
	// Holder identifies this run in the Lease (default host/pid/random). It must be unique per run.
	Holder string
	// OnWait is called when Acquire starts waiting for a holder, and again whenever the holder changes.
	OnWait func(holder string, since time.Time)
}

// Lock is a held lock, renewed in the background until Release.
type Lock struct {
	leases    typedcoord.LeaseInterface
	server    string
	namespace string
	app       string
	holder    string
	ttl       time.Duration

	mu    sync.Mutex
	lease *coordv1.Lease // as last written by us

	stop     context.CancelFunc
	done     chan struct{}
	lost     chan struct{}
	lostOnce sync.Once
}

// HeldError says another run holds the lock. Acquire returns it wrapped in an exit code 3 error (nothing
// was changed); find it with errors.As.
type HeldError struct {
	App, Namespace string
	Holder         string
	// Since is when the holder took the lock.
	Since time.Time
	// ExpiresIn is how long until the lock expires if its holder stopped renewing it.
	ExpiresIn time.Duration
	// Waited is how long Acquire waited; 0 when it did not wait.
	Waited time.Duration
}

func (e *HeldError) Error() string {
	since := e.Since.UTC().Format("15:04:05 UTC")
	if time.Since(e.Since) > 20*time.Hour {
		since = e.Since.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	state := "is locked"
	hint := "wait with --wait-for-lock 5m"
	if e.Waited > 0 {
		state = "is still locked after waiting " + e.Waited.Round(time.Second).String() + ","
		hint = "wait longer with --wait-for-lock"
	}
	unlock := "rollguard unlock " + e.App
	if e.Namespace != "" {
		unlock += " -n " + e.Namespace
	}
	return fmt.Sprintf("release %s %s by %s since %s (expires in %s if that process died); %s, or run %s if you are sure it is dead",
		e.App, state, e.Holder, since, e.ExpiresIn.Round(time.Second), hint, unlock)
}

// Acquire takes the lock for app in namespace, waiting up to opts.Wait while another run holds it. The
// returned Lock is renewed in the background until Release.
func Acquire(ctx context.Context, c *kube.Client, namespace, app string, opts Options) (*Lock, error) {
	if err := release.ValidateApp(app); err != nil {
		return nil, err
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	secs := int32((opts.TTL + time.Second - 1) / time.Second)
	if opts.Holder == "" {
		opts.Holder = DefaultHolder()
	}
	l := &Lock{
		leases: c.Typed.CoordinationV1().Leases(namespace), server: c.Server,
		namespace: namespace, app: app, holder: opts.Holder, ttl: time.Duration(secs) * time.Second,
	}
	name := LeaseName(app)
	start := time.Now()
	// observed is the Lease version we are looking at and when (by our monotonic clock) we first saw it.
	var observedRV string
	var observedAt time.Time
	notified := ""
	// A released lock is deleted, so the Lease is usually absent: try to create it before reading it, one
	// round trip instead of two on every run's critical path.
	absent := true
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("waiting for the lock of %s: %w", app, err)
		}
		var cur *coordv1.Lease
		var err error
		if !absent {
			cur, err = l.leases.Get(ctx, name, metav1.GetOptions{})
			absent = apierrors.IsNotFound(err)
		}
		if absent {
			created, err := l.leases.Create(ctx, l.newLease(name, secs), metav1.CreateOptions{FieldManager: kube.FieldManager})
			if apierrors.IsAlreadyExists(err) {
				absent = false
				continue // held, or another run created it first: look at it
			}
			if err != nil {
				return nil, kube.Classify(err, "taking the lock of "+app, c.Server)
			}
			l.start(created)
			return l, nil
		}
		if err != nil {
			return nil, kube.Classify(err, "reading the lock of "+app, c.Server)
		}
		now := time.Now()
		if cur.ResourceVersion != observedRV {
			observedRV, observedAt = cur.ResourceVersion, now
		}
		holder := ptrStr(cur.Spec.HolderIdentity)
		dur := leaseDuration(cur, l.ttl)
		expiresByClock := renewed(cur).Add(dur)
		expiresObserved := observedAt.Add(dur)
		if holder == "" || holder == l.holder || now.After(expiresByClock) || now.After(expiresObserved) {
			taken, err := l.takeOver(ctx, cur, secs)
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				continue // someone renewed, released or took it meanwhile: judge again
			}
			if err != nil {
				return nil, kube.Classify(err, "taking over the expired lock of "+app, c.Server)
			}
			l.start(taken)
			return l, nil
		}
		// The earlier of the two expiries; the clock-based one may lie in the past for our clock when skew
		// is large, but then the observed one bounds the wait.
		expires := expiresByClock
		if expiresObserved.Before(expires) {
			expires = expiresObserved
		}
		held := &HeldError{App: app, Namespace: namespace, Holder: holder, Since: acquired(cur), ExpiresIn: max(expires.Sub(now), 0)}
		if opts.Wait <= 0 {
			return nil, exitcode.New(exitcode.BadInput, held)
		}
		deadline := start.Add(opts.Wait)
		if !now.Before(deadline) {
			held.Waited = now.Sub(start)
			return nil, exitcode.New(exitcode.BadInput, held)
		}
		if holder != notified && opts.OnWait != nil {
			opts.OnWait(holder, held.Since)
		}
		notified = holder
		until := expires
		if deadline.Before(until) {
			until = deadline
		}
		if err := l.waitChange(ctx, name, cur.ResourceVersion, until); err != nil {
			return nil, fmt.Errorf("waiting for the lock of %s: %w", app, err)
		}
	}
}

// waitChange returns when the Lease changes or is deleted, or at until, whichever comes first.
func (l *Lock) waitChange(ctx context.Context, name, rv string, until time.Time) error {
	timer := time.NewTimer(max(time.Until(until), 0) + 10*time.Millisecond)
	defer timer.Stop()
	w, err := l.leases.Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", name).String(),
		ResourceVersion: rv,
	})
	if err != nil {
		// No watch (forbidden, or the version is gone): fall back to looking again shortly.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		case <-time.After(time.Second):
		}
		return nil
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type != watch.Bookmark {
				return nil
			}
		}
	}
}

func (l *Lock) newLease(name string, secs int32) *coordv1.Lease {
	now := metav1.NowMicro()
	return &coordv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				release.LabelManagedBy: release.ManagedBy,
				release.LabelApp:       l.app,
			},
		},
		Spec: coordv1.LeaseSpec{
			HolderIdentity:       &l.holder,
			LeaseDurationSeconds: &secs,
			AcquireTime:          &now,
			RenewTime:            &now,
		},
	}
}

// takeOver makes us the holder of cur, conditioned on cur's resourceVersion.
func (l *Lock) takeOver(ctx context.Context, cur *coordv1.Lease, secs int32) (*coordv1.Lease, error) {
	next := cur.DeepCopy()
	fresh := l.newLease(cur.Name, secs)
	next.Spec.HolderIdentity = fresh.Spec.HolderIdentity
	next.Spec.LeaseDurationSeconds = fresh.Spec.LeaseDurationSeconds
	next.Spec.AcquireTime = fresh.Spec.AcquireTime
	next.Spec.RenewTime = fresh.Spec.RenewTime
	transitions := int32(1)
	if cur.Spec.LeaseTransitions != nil {
		transitions = *cur.Spec.LeaseTransitions + 1
	}
	next.Spec.LeaseTransitions = &transitions
	if next.Labels == nil {
		next.Labels = map[string]string{}
	}
	for k, v := range fresh.Labels {
		next.Labels[k] = v
	}
	return l.leases.Update(ctx, next, metav1.UpdateOptions{FieldManager: kube.FieldManager})
}

// ErrLost says the lock was taken away (unlocked, or taken over after an expiry).
var ErrLost = errors.New("the app's lock was taken away (rollguard unlock, or it expired and another run took it)")

// ForceUnlock deletes the app's Lease whoever holds it and returns the holder it had ("" when the app was
// not locked). Only for a holder known to be dead: a live holder notices on its next renewal and stops.
func ForceUnlock(ctx context.Context, c *kube.Client, namespace, app string) (holder string, err error) {
	if err := release.ValidateApp(app); err != nil {
		return "", err
	}
	leases := c.Typed.CoordinationV1().Leases(namespace)
	name := LeaseName(app)
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return "", nil
		}
		if err != nil {
			return "", kube.Classify(err, "reading the lock of "+app, c.Server)
		}
		err = leases.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion}})
		if err == nil || apierrors.IsNotFound(err) {
			return ptrStr(cur.Spec.HolderIdentity), nil
		}
		if !apierrors.IsConflict(err) {
			return "", kube.Classify(err, "removing the lock of "+app, c.Server)
		}
	}
	return "", fmt.Errorf("removing the lock of %s: its Lease kept changing; try again", app)
}

// DefaultHolder is host/pid/random: readable in the "locked by" message, and unique even for two
// containers that share a hostname and a pid.
func DefaultHolder() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(b)
}

func leaseDuration(l *coordv1.Lease, def time.Duration) time.Duration {
	if l.Spec.LeaseDurationSeconds != nil && *l.Spec.LeaseDurationSeconds > 0 {
		return time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return def
}

func renewed(l *coordv1.Lease) time.Time {
	if l.Spec.RenewTime != nil {
		return l.Spec.RenewTime.Time
	}
	return acquired(l)
}

func acquired(l *coordv1.Lease) time.Time {
	if l.Spec.AcquireTime != nil {
		return l.Spec.AcquireTime.Time
	}
	return l.CreationTimestamp.Time
}

func ptrStr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
