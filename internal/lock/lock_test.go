package lock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/sandbox"
)

var cluster *sandbox.Cluster

// A test binary started with childEnv set is a lock holder that a test kills, as a pipeline is killed.
const childEnv = "ROLLGUARD_LOCK_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(holdUntilKilled())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	cluster, err = sandbox.Start(context.Background(), sandbox.Options{Progress: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cluster.Stop()
	return m.Run()
}

// holdUntilKilled takes the lock named by the environment, says so on stdout, and renews it until killed.
func holdUntilKilled() int {
	kubeconfig, ns := os.Getenv("KUBECONFIG"), os.Getenv("LOCK_NAMESPACE")
	c, err := connectTo(kubeconfig, ns)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := Acquire(context.Background(), c, ns, os.Getenv("LOCK_APP"), Options{TTL: 2 * time.Second, Holder: os.Getenv("LOCK_HOLDER")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("acquired", l.Holder())
	select {}
}

func connectTo(kubeconfig, namespace string) (*kube.Client, error) {
	flags := genericclioptions.NewConfigFlags(true)
	flags.KubeConfig = &kubeconfig
	flags.Namespace = &namespace
	return kube.Connect(context.Background(), flags)
}

func connect(t *testing.T, namespace string) *kube.Client {
	t.Helper()
	c, err := connectTo(cluster.Kubeconfig, namespace)
	if err != nil {
		t.Fatalf("connecting to the sandbox: %v", err)
	}
	return c
}

func acquire(t *testing.T, c *kube.Client, ns, app string, opts Options) *Lock {
	t.Helper()
	l, err := Acquire(context.Background(), c, ns, app, opts)
	if err != nil {
		t.Fatalf("acquiring %s: %v", app, err)
	}
	t.Cleanup(func() { _ = l.Release(context.Background()) })
	return l
}

func TestHeldFailsAtOnce(t *testing.T) {
	ns := cluster.Namespace(t)
	c := connect(t, ns)
	first := acquire(t, c, ns, "web", Options{Holder: "ci-runner-7/4411"})

	start := time.Now()
	_, err := Acquire(context.Background(), c, ns, "web", Options{})
	if err == nil {
		t.Fatal("a second run took a held lock")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Wait 0 took %s to fail", time.Since(start))
	}
	var held *HeldError
	if !errors.As(err, &held) || held.Holder != first.Holder() {
		t.Fatalf("error %v does not say who holds the lock", err)
	}
	if exitcode.Of(err) != exitcode.BadInput {
		t.Errorf("exit code %d, want %d", exitcode.Of(err), exitcode.BadInput)
	}
	msg := err.Error()
	for _, want := range []string{"release web is locked by ci-runner-7/4411 since ", "expires in ", "--wait-for-lock 5m", "rollguard unlock web -n " + ns, "if you are sure it is dead"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("message is not one line: %q", msg)
	}
	// Another app is not affected.
	acquire(t, c, ns, "api", Options{})
}

func TestWaiterGetsLockAfterRelease(t *testing.T) {
	ctx := context.Background()
	ns := cluster.Namespace(t)
	c := connect(t, ns)
	first := acquire(t, c, ns, "web", Options{Holder: "first"})

	waiting := make(chan string, 1)
	type got struct {
		l   *Lock
		err error
		at  time.Time
	}
	done := make(chan got, 1)
	go func() {
		l, err := Acquire(ctx, c, ns, "web", Options{Wait: time.Minute, Holder: "second", OnWait: func(holder string, _ time.Time) { waiting <- holder }})
		done <- got{l, err, time.Now()}
	}()
	select {
	case h := <-waiting:
		if h != "first" {
			t.Errorf("OnWait reported holder %q, want first", h)
		}
	case g := <-done:
		t.Fatalf("the second run did not wait: %v, %v", g.l, g.err)
	case <-time.After(30 * time.Second):
		t.Fatal("the second run never reported waiting")
	}
	released := time.Now()
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-done:
		if g.err != nil {
			t.Fatalf("waiter: %v", g.err)
		}
		defer g.l.Release(ctx)
		// Well within the default 30s TTL: the release, not expiry, let it in.
		if d := g.at.Sub(released); d > 5*time.Second {
			t.Errorf("waiter got the lock %s after the release", d)
		}
		lease, err := c.Typed.CoordinationV1().Leases(ns).Get(ctx, LeaseName("web"), metav1.GetOptions{})
		if err != nil || *lease.Spec.HolderIdentity != "second" {
			t.Errorf("lease after hand-over: %v, %v", lease, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiter did not get the released lock")
	}
}

func TestWaitGivesUp(t *testing.T) {
	ns := cluster.Namespace(t)
	c := connect(t, ns)
	acquire(t, c, ns, "web", Options{Holder: "first"})
	_, err := Acquire(context.Background(), c, ns, "web", Options{Wait: 1500 * time.Millisecond})
	var held *HeldError
	if !errors.As(err, &held) || held.Waited < 1500*time.Millisecond {
		t.Fatalf("after waiting: %v", err)
	}
	if !strings.Contains(err.Error(), "still locked after waiting") {
		t.Errorf("message %q does not say it waited", err)
	}
}

// A holder killed with SIGKILL never releases; its lock must expire after the TTL, and of two runs
// waiting for it exactly one may win.
func TestKilledHolderExpires(t *testing.T) {
	ctx := context.Background()
	ns := cluster.Namespace(t)
	c := connect(t, ns)

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"=1", "KUBECONFIG="+cluster.Kubeconfig, "LOCK_NAMESPACE="+ns, "LOCK_APP=web", "LOCK_HOLDER=doomed/1")
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "acquired doomed/1") {
		t.Fatalf("child holder: %q, %v", line, err)
	}

	// Alive, it keeps the lock: renewals continue past its TTL.
	lease, err := c.Typed.CoordinationV1().Leases(ns).Get(ctx, LeaseName("web"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(ctx, c, ns, "web", Options{Wait: 3 * time.Second})
	if err == nil {
		t.Fatal("took the lock of a live holder that renews it")
	}
	renewed, err := c.Typed.CoordinationV1().Leases(ns).Get(ctx, LeaseName("web"), metav1.GetOptions{})
	if err != nil || !renewed.Spec.RenewTime.After(lease.Spec.RenewTime.Time) {
		t.Fatalf("the live holder did not renew: %v, %v", renewed, err)
	}

	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	killed := time.Now()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []*Lock
	var losers []error
	for i := range 2 {
		wc := connect(t, ns)
		wg.Go(func() {
			l, err := Acquire(ctx, wc, ns, "web", Options{Wait: 5 * time.Second, TTL: 2 * time.Second, Holder: fmt.Sprintf("waiter-%d", i)})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				losers = append(losers, err)
				return
			}
			winners = append(winners, l)
		})
	}
	wg.Wait()
	for _, l := range winners {
		defer l.Release(ctx)
	}
	if len(winners) != 1 || len(losers) != 1 {
		t.Fatalf("%d winners, %d losers (%v); want exactly one of each", len(winners), len(losers), losers)
	}
	var held *HeldError
	if !errors.As(losers[0], &held) || held.Holder != winners[0].Holder() {
		t.Errorf("the loser's error %v does not name the winner %s", losers[0], winners[0].Holder())
	}
	lease, err = c.Typed.CoordinationV1().Leases(ns).Get(ctx, LeaseName("web"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *lease.Spec.HolderIdentity != winners[0].Holder() || lease.Spec.LeaseTransitions == nil || *lease.Spec.LeaseTransitions != 1 {
		t.Errorf("lease after take-over: holder %s transitions %v", *lease.Spec.HolderIdentity, lease.Spec.LeaseTransitions)
	}
	if !lease.Spec.AcquireTime.After(killed) {
		t.Errorf("taken over at %s, before the holder was killed at %s", lease.Spec.AcquireTime, killed)
	}
}

func TestForceUnlock(t *testing.T) {
	ctx := context.Background()
	ns := cluster.Namespace(t)
	c := connect(t, ns)

	holder, err := ForceUnlock(ctx, c, ns, "web")
	if err != nil || holder != "" {
		t.Fatalf("unlocking an unlocked app: %q, %v", holder, err)
	}
	l := acquire(t, c, ns, "web", Options{Holder: "stuck/1", TTL: 2 * time.Second})
	holder, err = ForceUnlock(ctx, c, ns, "web")
	if err != nil || holder != "stuck/1" {
		t.Fatalf("ForceUnlock = %q, %v; want stuck/1", holder, err)
	}
	if _, err := c.Typed.CoordinationV1().Leases(ns).Get(ctx, LeaseName("web"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("lease still there after unlock: %v", err)
	}
	// The old holder notices on its next renewal.
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Error("the force-unlocked holder did not notice it lost the lock")
	}
	// A new run takes it at once; the old holder's Release must not delete the new run's lease.
	next := acquire(t, c, ns, "web", Options{Holder: "next/2"})
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lease, err := c.Typed.CoordinationV1().Leases(ns).Get(ctx, LeaseName("web"), metav1.GetOptions{})
	if err != nil || *lease.Spec.HolderIdentity != next.Holder() {
		t.Errorf("the old holder's Release removed the new lock: %v, %v", lease, err)
	}
}

func TestReleaseDeletesLease(t *testing.T) {
	ctx := context.Background()
	ns := cluster.Namespace(t)
	c := connect(t, ns)
	l := acquire(t, c, ns, "web", Options{})
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Typed.CoordinationV1().Leases(ns).Get(ctx, LeaseName("web"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("lease still there after Release: %v", err)
	}
	// Releasing with a cancelled context (an interrupted run) still works.
	l = acquire(t, c, ns, "web", Options{})
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Release(cancelled); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Typed.CoordinationV1().Leases(ns).Get(ctx, LeaseName("web"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("lease still there after Release with a cancelled context: %v", err)
	}
}

func TestBadAppName(t *testing.T) {
	ns := cluster.Namespace(t)
	_, err := Acquire(context.Background(), connect(t, ns), ns, "Web_App", Options{})
	if exitcode.Of(err) != exitcode.BadInput || !strings.Contains(err.Error(), "Web_App") {
		t.Errorf("bad app name: %v", err)
	}
}
