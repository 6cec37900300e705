package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configures Start and EnsureBinaries. The zero value is a working default.
type Options struct {
	// Dir is the work directory (logs, kubeconfig, etcd data, state.json). Empty: a temporary
	// directory, removed by Stop. A given Dir is kept, and reset by the next Start.
	Dir string
	// CacheDir holds the built binaries; empty: $ROLLGUARD_SANDBOX_CACHE, else <user cache>/rollguard/sandbox.
	CacheDir string
	// Nodes is the number of simulated nodes (cpu 4, memory 8Gi, pods 110 each); 0 means 2.
	Nodes int
	// Progress receives build progress and the "cluster ready" line; nil means os.Stderr.
	Progress io.Writer
	// NoBuild makes a missing binary an error instead of building it.
	NoBuild bool
	// Detach starts processes in their own session without a parent-death signal, so they outlive
	// the calling process; stop them with Down(dir). Used by `sandbox up`.
	Detach bool
	// APIServerPort fixes the apiserver's port on 127.0.0.1; 0 picks a free one.
	APIServerPort int
	// ReadyTimeout bounds each component's wait for readiness; 0 means 30s.
	ReadyTimeout time.Duration
	// Binaries overrides individual binaries (non-empty fields); the rest come from the cache.
	Binaries Binaries
	// RealNode adds a real node beside the kwok nodes: containerd, runc and a kubelet registering the
	// node RealNodeName, pulling from a local registry (RegistryHost). Needs root; see RealNodeSupported.
	RealNode bool
	// NodeBinaries overrides individual binaries of the real node (non-empty fields).
	NodeBinaries RealNodeBinaries
}

const serviceIP = "10.96.0.1"

// Cluster is a running sandbox control plane.
type Cluster struct {
	// Dir is the work directory.
	Dir string
	// Kubeconfig is the path of an admin kubeconfig (context "sandbox").
	Kubeconfig string

	opts   Options
	bins   Binaries
	pki    pki
	rest   *rest.Config
	client kubernetes.Interface
	ownDir bool

	// The real node (Options.RealNode); node is nil without one.
	node        *nodeState
	nodeBins    RealNodeBinaries
	registryBin string
	pauseImage  string
	// programs serialises buildProgram: parallel tests push the same test app at once.
	programs sync.Mutex

	mu      sync.Mutex
	ports   map[string]int
	procs   map[string]*process
	stopped bool
	keep    bool
}

// Start builds missing binaries (see EnsureBinaries), starts etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok, creates the nodes, and returns once the nodes are
// Ready and the default ServiceAccount exists. On error nothing is left running.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	begin := time.Now()
	if opts.Nodes <= 0 {
		opts.Nodes = 2
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	bins, err := resolveBinaries(ctx, opts)
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, bins: bins, ports: map[string]int{}, procs: map[string]*process{}}
	if err := c.prepareDir(); err != nil {
		return nil, err
	}
	if err := c.start(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	fmt.Fprintf(progress(opts), "sandbox: cluster ready in %s (kubeconfig %s)\n", time.Since(begin).Round(10*time.Millisecond), c.Kubeconfig)
	return c, nil
}

func resolveBinaries(ctx context.Context, opts Options) (Binaries, error) {
	o := opts.Binaries
	all := []*string{&o.Etcd, &o.APIServer, &o.ControllerManager, &o.Scheduler, &o.Kwok}
	need := false
	for _, p := range all {
		need = need || *p == ""
	}
	if need {
		cached, err := EnsureBinaries(ctx, opts)
		if err != nil {
			return Binaries{}, err
		}
		for i, p := range []string{cached.Etcd, cached.APIServer, cached.ControllerManager, cached.Scheduler, cached.Kwok} {
			if *all[i] == "" {
				*all[i] = p
			}
		}
	}
	for _, p := range all {
		fi, err := os.Stat(*p)
		if err != nil {
			return Binaries{}, fmt.Errorf("sandbox: binary %s: %w", *p, err)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return Binaries{}, fmt.Errorf("sandbox: binary %s is not an executable file", *p)
		}
	}
	return o, nil
}

func (c *Cluster) prepareDir() error {
	if c.opts.Dir == "" {
		d, err := os.MkdirTemp("", "rollguard-sandbox-")
		if err != nil {
			return fmt.Errorf("sandbox: creating work dir: %w", err)
		}
		c.Dir, c.ownDir = d, true
	} else {
		d, err := filepath.Abs(c.opts.Dir)
		if err != nil {
			return fmt.Errorf("sandbox: work dir %s: %w", c.opts.Dir, err)
		}
		if Running(d) {
			return fmt.Errorf("sandbox: a cluster is already running in %s; stop it with `sandbox down --dir %s`", d, d)
		}
		// A fresh cluster every time: old etcd data would bring back old objects and old certificates.
		if err := Down(d); err != nil { // a crashed earlier run may have left a real node's mounts
			return err
		}
		for _, sub := range []string{"etcd", "logs", "pki", "kwok", "kubeconfig", stateFile, "node", "registry", "images"} {
			if err := os.RemoveAll(filepath.Join(d, sub)); err != nil {
				return fmt.Errorf("sandbox: resetting %s: %w", d, err)
			}
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("sandbox: creating work dir: %w", err)
		}
		c.Dir = d
	}
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	return nil
}

// Logs returns the log file path of a component (Etcd, APIServer, ...).
func (c *Cluster) Logs(component string) string {
	return filepath.Join(c.Dir, "logs", component+".log")
}

// RESTConfig returns a new admin rest.Config for the cluster.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.rest) }

// Client returns an admin clientset.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

func (c *Cluster) start(ctx context.Context) error {
	var err error
	if c.pki, err = writePKI(filepath.Join(c.Dir, "pki")); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	kwokDir := filepath.Join(c.Dir, "kwok")
	if err := os.MkdirAll(kwokDir, 0o755); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	stages, err := writeStages(kwokDir)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}

	if err := c.launch(ctx, Etcd, []string{"etcd", "etcd-peer"}, c.etcdArgs, nil, c.etcdReady); err != nil {
		return err
	}
	if c.opts.APIServerPort != 0 {
		c.ports["apiserver"] = c.opts.APIServerPort
		if err := portFree(c.opts.APIServerPort); err != nil {
			return fmt.Errorf("sandbox: kube-apiserver cannot use port 127.0.0.1:%d: %v; free it or choose another port", c.opts.APIServerPort, err)
		}
	}
	if err := c.launch(ctx, APIServer, []string{"apiserver"}, c.apiserverArgs, nil, c.apiserverReady); err != nil {
		return err
	}
	if err := c.writeKubeconfig(); err != nil {
		return err
	}
	if c.client, err = kubernetes.NewForConfig(c.rest); err != nil {
		return fmt.Errorf("sandbox: creating client: %w", err)
	}

	// kwok's Widget stages need the type to exist when it starts.
	if err := c.createWidgetCRD(ctx); err != nil {
		return err
	}

	// The remaining components only need the apiserver; start them together, then create the nodes.
	kwokArgs := func() []string {
		manage := "--manage-all-nodes=true"
		if c.opts.RealNode {
			manage = "--manage-nodes-with-label-selector=" + NodeLabel + "=kwok" // never the real node
		}
		return []string{"--kubeconfig=" + c.Kubeconfig, manage, "--config=" + stages,
			"--cidr=10.244.0.0/16", "--node-lease-duration-seconds=40"}
	}
	starts := []struct {
		name  string
		ports []string
		args  func() []string
		env   []string
		ready func(context.Context) error
	}{
		{ControllerManager, []string{"kcm"}, c.kcmArgs, nil, c.healthz("kcm")},
		{Scheduler, []string{"scheduler"}, c.schedulerArgs, nil, c.healthz("scheduler")},
		// KWOK_WORKDIR keeps kwok from reading the user's ~/.kwok/kwok.yaml.
		{Kwok, nil, kwokArgs, []string{"KWOK_WORKDIR=" + kwokDir}, nil},
	}
	errs := make(chan error, len(starts))
	for _, s := range starts {
		go func() { errs <- c.launch(ctx, s.name, s.ports, s.args, s.env, s.ready) }()
	}
	if err := c.createNodes(ctx); err != nil {
		return err
	}
	for range starts {
		if err := <-errs; err != nil {
			return err
		}
	}
	if err := c.waitCluster(ctx); err != nil {
		return err
	}
	if c.opts.RealNode {
		return c.startRealNode(ctx)
	}
	return nil
}

// launch starts a component and waits until ready; a clash on a port we picked is retried with new ports.
func (c *Cluster) launch(ctx context.Context, name string, portKeys []string, args func() []string, env []string, ready func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		c.mu.Lock()
		for _, k := range portKeys {
			if c.ports[k] == 0 || attempt > 1 {
				port, err := freePort()
				if err != nil {
					c.mu.Unlock()
					return fmt.Errorf("sandbox: finding a free port for %s: %w", name, err)
				}
				c.ports[k] = port
			}
		}
		bin := c.binary(name)
		p := &process{name: name, bin: bin, args: args(), env: env, logPath: c.Logs(name)}
		c.mu.Unlock()
		err := c.run(p)
		if err == nil {
			err = c.waitReady(ctx, p, ready)
		}
		if err == nil {
			return nil
		}
		fixed := name == APIServer && c.opts.APIServerPort != 0
		if p.exited() && p.portClash() {
			if fixed || attempt >= 3 {
				return fmt.Errorf("sandbox: %s could not listen: port already in use (ports %v); see %s", name, c.portsOf(portKeys), p.logPath)
			}
			continue
		}
		return err
	}
}

func (c *Cluster) portsOf(keys []string) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for _, k := range keys {
		out = append(out, c.ports[k])
	}
	return out
}

func (c *Cluster) binary(name string) string {
	switch name {
	case Etcd:
		return c.bins.Etcd
	case APIServer:
		return c.bins.APIServer
	case ControllerManager:
		return c.bins.ControllerManager
	case Scheduler:
		return c.bins.Scheduler
	case Registry:
		return c.registryBin
	case Containerd:
		return c.nodeBins.Containerd
	case Kubelet:
		return c.nodeBins.Kubelet
	default:
		return c.bins.Kwok
	}
}

// run starts p, replacing any earlier process of the same component, and records it in state.json.
func (c *Cluster) run(p *process) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return fmt.Errorf("sandbox: cluster is stopped")
	}
	if old := c.procs[p.name]; old != nil {
		old.stop(stopGrace)
	}
	if err := p.start(c.Dir, c.opts.Detach); err != nil {
		return err
	}
	c.procs[p.name] = p
	return c.saveStateLocked()
}

func (c *Cluster) saveStateLocked() error {
	s := state{Detach: c.opts.Detach, Ports: c.ports, Node: c.node}
	for _, group := range stopOrder {
		for _, name := range group {
			if p := c.procs[name]; p != nil && p.cmd != nil {
				s.Procs = append(s.Procs, stateProc{Name: name, PID: p.cmd.Process.Pid, Binary: p.bin})
			}
		}
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("sandbox: encoding state: %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, stateFile), data, 0o644); err != nil {
		return fmt.Errorf("sandbox: writing state: %w", err)
	}
	return nil
}

// waitReady polls ready until it succeeds, the process exits, or ReadyTimeout passes.
func (c *Cluster) waitReady(ctx context.Context, p *process, ready func(context.Context) error) error {
	if ready == nil {
		return nil
	}
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, c.opts.ReadyTimeout, true, func(ctx context.Context) (bool, error) {
		if p.exited() {
			return false, c.exitedErr(p)
		}
		last = ready(ctx)
		return last == nil, nil
	})
	if err == nil {
		return nil
	}
	if p.exited() {
		return c.exitedErr(p)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("sandbox: waiting for %s: %w", p.name, ctx.Err())
	}
	return fmt.Errorf("sandbox: %s did not become ready within %s (%v); see %s:\n%s", p.name, c.opts.ReadyTimeout, last, p.logPath, p.logTail(8))
}

func (c *Cluster) exitedErr(p *process) error {
	return fmt.Errorf("sandbox: %s exited during start (%v); see %s:\n%s", p.name, p.waitErr, p.logPath, p.logTail(8))
}

func (c *Cluster) etcdArgs() []string {
	client := "http://127.0.0.1:" + strconv.Itoa(c.ports["etcd"])
	peer := "http://127.0.0.1:" + strconv.Itoa(c.ports["etcd-peer"])
	return []string{"--name=default", "--data-dir=" + filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=default=" + peer, "--unsafe-no-fsync", "--log-level=warn"}
}

func (c *Cluster) apiserverArgs() []string {
	return []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(c.ports["etcd"]),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.ports["apiserver"]),
		"--tls-cert-file=" + c.pki.Cert, "--tls-private-key-file=" + c.pki.Key,
		"--client-ca-file=" + c.pki.CACert,
		"--service-account-key-file=" + c.pki.Key, "--service-account-signing-key-file=" + c.pki.Key,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true",
		"--profiling=false",
		// Pod logs come from the kubelet; the admin certificate is one its client CA accepts.
		"--kubelet-client-certificate=" + c.pki.Cert, "--kubelet-client-key=" + c.pki.Key,
	}
}

func (c *Cluster) kcmArgs() []string {
	return []string{"--kubeconfig=" + c.Kubeconfig, "--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.ports["kcm"]),
		"--root-ca-file=" + c.pki.CACert, "--service-account-private-key-file=" + c.pki.Key,
		"--leader-elect=false", "--kube-api-qps=1000", "--kube-api-burst=2000", "--profiling=false"}
}

func (c *Cluster) schedulerArgs() []string {
	return []string{"--kubeconfig=" + c.Kubeconfig, "--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.ports["scheduler"]), "--leader-elect=false", "--profiling=false",
		// As the controller-manager's: binding thousands of kwok pods at the default 50 qps would make every
		// large-release test and benchmark wait on the scheduler's client, not on what it measures.
		"--kube-api-qps=1000", "--kube-api-burst=2000"}
}

func (c *Cluster) etcdReady(ctx context.Context) error {
	return httpOK(ctx, http.DefaultClient, "http://127.0.0.1:"+strconv.Itoa(c.ports["etcd"])+"/health")
}

func (c *Cluster) apiserverReady(ctx context.Context) error {
	cfg := c.restConfig()
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	return httpOK(ctx, client, cfg.Host+"/readyz")
}

// healthz checks a component's own HTTPS endpoint (self-signed; /healthz needs no authentication).
func (c *Cluster) healthz(portKey string) func(context.Context) error {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // local self-signed health endpoint
	client := &http.Client{Transport: tr}
	return func(ctx context.Context) error {
		c.mu.Lock()
		port := c.ports[portKey]
		c.mu.Unlock()
		return httpOK(ctx, client, "https://127.0.0.1:"+strconv.Itoa(port)+"/healthz")
	}
}

func httpOK(ctx context.Context, client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func (c *Cluster) restConfig() *rest.Config {
	c.mu.Lock()
	port := c.ports["apiserver"]
	c.mu.Unlock()
	return &rest.Config{
		Host: "https://127.0.0.1:" + strconv.Itoa(port),
		TLSClientConfig: rest.TLSClientConfig{
			CAData: c.pki.caPEM, CertData: c.pki.certPEM, KeyData: c.pki.keyPEM,
		},
		QPS: 100, Burst: 200,
	}
}

func (c *Cluster) writeKubeconfig() error {
	c.rest = c.restConfig()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["sandbox"] = &clientcmdapi.Cluster{Server: c.rest.Host, CertificateAuthorityData: c.pki.caPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.pki.certPEM, ClientKeyData: c.pki.keyPEM}
	cfg.Contexts["sandbox"] = &clientcmdapi.Context{Cluster: "sandbox", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "sandbox"
	if err := clientcmd.WriteToFile(*cfg, c.Kubeconfig); err != nil {
		return fmt.Errorf("sandbox: writing kubeconfig: %w", err)
	}
	return nil
}

func (c *Cluster) createNodes(ctx context.Context) error {
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	for i := range c.opts.Nodes {
		name := fmt.Sprintf("sandbox-node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: name,
				Labels: map[string]string{"type": "kwok", NodeLabel: "kwok", "kubernetes.io/hostname": name,
					"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			},
			Status: corev1.NodeStatus{Capacity: res, Allocatable: res},
		}
		if _, err := c.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("sandbox: creating node %s: %w", name, err)
		}
	}
	return nil
}

// waitCluster waits until every node is Ready and untainted and the default ServiceAccount exists.
func (c *Cluster) waitCluster(ctx context.Context) error {
	var why string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, c.opts.ReadyTimeout, true, func(ctx context.Context) (bool, error) {
		c.mu.Lock()
		for _, p := range c.procs {
			if p.exited() {
				c.mu.Unlock()
				return false, fmt.Errorf("sandbox: %s exited (%v); see %s:\n%s", p.name, p.waitErr, p.logPath, p.logTail(8))
			}
		}
		c.mu.Unlock()
		nodes, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			why = err.Error()
			return false, nil
		}
		ready := 0
		for _, n := range nodes.Items {
			if nodeReady(&n) && len(n.Spec.Taints) == 0 {
				ready++
			}
		}
		if ready < c.opts.Nodes {
			why = fmt.Sprintf("%d of %d nodes Ready; is kwok running? see %s", ready, c.opts.Nodes, c.Logs(Kwok))
			return false, nil
		}
		if _, err := c.client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			why = fmt.Sprintf("no default ServiceAccount yet (%v); see %s", err, c.Logs(ControllerManager))
			return false, nil
		}
		return true, nil
	})
	if err != nil && strings.HasPrefix(err.Error(), "sandbox:") {
		return err
	}
	if err != nil {
		return fmt.Errorf("sandbox: cluster did not become ready within %s: %s", c.opts.ReadyTimeout, why)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// restartGrace is short because with clients connected kube-apiserver spends about a minute draining
// watches after SIGTERM; a restart stands for an outage, so there is nothing worth waiting for.
const restartGrace = 3 * time.Second

// RestartAPIServer stops kube-apiserver (SIGTERM, SIGKILL after 3 s) and starts it again on the same
// port, then waits until it is ready. Clients see an outage of a few seconds.
func (c *Cluster) RestartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	old := c.procs[APIServer]
	c.mu.Unlock()
	if old == nil {
		return fmt.Errorf("sandbox: kube-apiserver is not running")
	}
	old.stop(restartGrace)
	p := &process{name: APIServer, bin: old.bin, args: old.args, logPath: old.logPath}
	if err := c.run(p); err != nil {
		return err
	}
	return c.waitReady(ctx, p, c.apiserverReady)
}

// Stop stops every process (SIGTERM, SIGKILL after 10 s) and waits for them to exit. It removes a
// temporary work dir. Calling it again does nothing.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	procs, node := c.procs, c.node
	c.mu.Unlock()
	var cleanErr error
	for _, group := range stopOrder {
		var wg sync.WaitGroup
		for _, name := range group {
			if p := procs[name]; p != nil {
				wg.Go(func() { p.stop(stopGrace) })
			}
		}
		wg.Wait()
		if group[0] == Containerd && node != nil {
			cleanErr = cleanupNode(node)
		}
	}
	if cleanErr != nil {
		return cleanErr // state.json stays, so `sandbox down` can try again
	}
	if err := os.Remove(filepath.Join(c.Dir, stateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sandbox: removing state: %w", err)
	}
	if c.ownDir && !c.keep {
		if err := os.RemoveAll(c.Dir); err != nil {
			return fmt.Errorf("sandbox: removing %s: %w", c.Dir, err)
		}
	}
	return nil
}

// PIDs returns the process id of each running component.
func (c *Cluster) PIDs() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for name, p := range c.procs {
		if p.cmd != nil {
			out[name] = p.cmd.Process.Pid
		}
	}
	return out
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// Namespace creates a fresh namespace named after the test, waits for its default ServiceAccount
// (pods are refused until it exists), and deletes the namespace when the test ends.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	base := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 50 {
		base = strings.Trim(base[:50], "-")
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := fmt.Sprintf("%s-%x", base, suffix)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("sandbox: creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		err := c.client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("sandbox: deleting namespace %s: %v", name, err)
		}
	})
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := c.client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("sandbox: namespace %s got no default ServiceAccount within 30s; see %s", name, c.Logs(ControllerManager))
	}
	return name
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(port int) error {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return errors.New("port already in use")
		}
		return err
	}
	return l.Close()
}
