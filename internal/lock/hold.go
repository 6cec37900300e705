package lock

import (
	"context"
	"errors"
	"fmt"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/rollguard/rollguard/internal/kube"
)

// Holding a lock: renewing the Lease every TTL/3, watching it for a takeover, and releasing it.

// start begins renewing the Lease we now hold.
func (l *Lock) start(lease *coordv1.Lease) {
	l.lease = lease
	ctx, cancel := context.WithCancel(context.Background())
	l.stop, l.done, l.lost = cancel, make(chan struct{}), make(chan struct{})
	go l.renewLoop(ctx)
	go l.watchLoop(ctx, lease.ResourceVersion)
}

// watchLoop watches the Lease so that a lock taken away (`rollguard unlock`, a takeover after an expiry)
// is noticed at once, not at the next renewal: a run that lost its lock must stop before the next run
// changes the app. A watch that ends is re-opened; renewals still catch a loss if watching keeps failing.
func (l *Lock) watchLoop(ctx context.Context, rv string) {
	sel := fields.OneTermEqualSelector("metadata.name", LeaseName(l.app)).String()
	for ctx.Err() == nil {
		w, err := l.leases.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			rv = "" // the version may be too old: start from the current state
			continue
		}
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Deleted:
				l.markLost()
				w.Stop()
				return
			case watch.Added, watch.Modified:
				lease, ok := ev.Object.(*coordv1.Lease)
				if !ok {
					continue
				}
				rv = lease.ResourceVersion
				if ptrStr(lease.Spec.HolderIdentity) != l.holder {
					l.markLost()
					w.Stop()
					return
				}
			case watch.Bookmark:
				if o, ok := ev.Object.(metav1.Object); ok {
					rv = o.GetResourceVersion()
				}
			}
		}
		w.Stop()
	}
}

// Verify reads the Lease and returns ErrLost unless this run still holds it: the last check before a run
// declares its outcome, so a run whose lock was taken cannot claim a result another run has overwritten.
// A transient failure to read it (an API server restart) is retried: the lock stays ours until the renewal
// loop has gone a whole TTL without renewing, and then Lost says so. Only ErrLost or ctx's end (its cause)
// is returned.
func (l *Lock) Verify(ctx context.Context) error {
	for {
		select {
		case <-l.lost:
			return ErrLost
		case <-ctx.Done():
			return context.Cause(ctx)
		default:
		}
		cur, err := l.leases.Get(ctx, LeaseName(l.app), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) || err == nil && ptrStr(cur.Spec.HolderIdentity) != l.holder:
			l.markLost()
			return ErrLost
		case err == nil:
			return nil
		}
		select {
		case <-l.lost:
			return ErrLost
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// renewLoop renews every TTL/3. A renewal that fails on the network is retried on the next tick; when
// none succeeded for a whole TTL the lock is lost (another run may take it), and so is it when the
// Lease now names another holder.
func (l *Lock) renewLoop(ctx context.Context) {
	defer close(l.done)
	tick := time.NewTicker(l.ttl / 3)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, l.ttl/3)
		ours, err := l.renew(rctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && ours:
			last = time.Now()
		case err == nil && !ours:
			l.markLost()
			return
		case time.Since(last) >= l.ttl:
			l.markLost()
			return
		}
	}
}

// renew writes a new renewTime, reporting whether the Lease is still ours.
func (l *Lock) renew(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for attempt := 0; attempt < 3; attempt++ {
		next := l.lease.DeepCopy()
		now := metav1.NowMicro()
		next.Spec.RenewTime = &now
		updated, err := l.leases.Update(ctx, next, metav1.UpdateOptions{FieldManager: kube.FieldManager})
		if err == nil {
			l.lease = updated
			return true, nil
		}
		if apierrors.IsNotFound(err) {
			return false, nil // force-unlocked
		}
		if !apierrors.IsConflict(err) {
			return true, err
		}
		cur, err := l.leases.Get(ctx, l.lease.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return true, err
		}
		if ptrStr(cur.Spec.HolderIdentity) != l.holder {
			return false, nil
		}
		l.lease = cur
	}
	return true, errors.New("the lock's Lease keeps changing under us")
}

func (l *Lock) markLost() { l.lostOnce.Do(func() { close(l.lost) }) }

// Lost is closed when the lock was lost: renewal failed for a whole TTL, another run took it over, or it
// was force-unlocked. A run that loses its lock should stop changing the app.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Holder is this lock's holder identity.
func (l *Lock) Holder() string { return l.holder }

// Release stops renewing and deletes the Lease if it is still ours. It still works when ctx is already
// cancelled (an interrupted run), within a short deadline of its own.
func (l *Lock) Release(ctx context.Context) error {
	l.stop()
	<-l.done
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
	}
	name := LeaseName(l.app)
	// Unchanged since our last write means still ours: delete it on that condition, one round trip. A
	// conflict (renewed by someone else's takeover, or by our own write racing the stop) falls back to
	// reading it first.
	select {
	case <-l.lost:
	default:
		l.mu.Lock()
		last := l.lease
		l.mu.Unlock()
		err := l.leases.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &last.UID, ResourceVersion: &last.ResourceVersion}})
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) {
			return kube.Classify(err, "releasing the lock of "+l.app, l.server)
		}
	}
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := l.leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return kube.Classify(err, "releasing the lock of "+l.app, l.server)
		}
		if ptrStr(cur.Spec.HolderIdentity) != l.holder {
			return nil // taken over after we lost it: not ours to delete
		}
		err = l.leases.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion}})
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) {
			return kube.Classify(err, "releasing the lock of "+l.app, l.server)
		}
	}
	return fmt.Errorf("releasing the lock of %s: its Lease kept changing", l.app)
}
