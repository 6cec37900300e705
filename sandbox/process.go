package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Component names, as used for log files (<dir>/logs/<component>.log) and in errors.
const (
	Etcd              = "etcd"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
	Kwok              = "kwok"
)

// stopOrder stops the clients of the apiserver first and etcd last, so no component spends its
// shutdown retrying a dead dependency.
// A real node goes first: the kubelet, then containerd, then what they left (see cleanupNode).
var stopOrder = [][]string{{Kubelet}, {Containerd}, {Kwok, Scheduler, ControllerManager, Registry}, {APIServer}, {Etcd}}

const stopGrace = 10 * time.Second

// reservedNice is how many nice levels above the sandbox a real node's daemons run: containerd (with its
// shims, runc and the pods it starts) and the kubelet. On a real node kube-reserved and system-reserved CPU
// keep them responsive whatever else runs; this machine cannot give them a cgroup of their own, and
// without it an e2e suite at load 18 on 2 cores starved containerd until its handling of a container's
// exit timed out (10 s): the kubelet reported a crashed container as running, a node no cluster runs.
const reservedNice = 10

// process is one running component.
type process struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string
	logFrom int64 // log size when this run started: errors quote only this run's lines
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// start launches the process with its output appended to its log file.
//
// Non-detached children get their own process group (a Ctrl-C aimed at `go test` is handled by us, which
// then stops them in order) and Pdeathsig=SIGKILL, so they die if the test binary dies without cleaning
// up. Pdeathsig fires when the *thread* that forked the child exits, not the process; the Go runtime
// never ends its threads except one whose goroutine exits while LockOSThread'ed, so we must not start
// children from a locked goroutine. Detached children (`sandbox up`) get a new session instead, so they
// outlive the command and ignore the terminal's signals.
func (p *process) start(dir string, detach bool) error {
	if err := os.MkdirAll(filepath.Dir(p.logPath), 0o755); err != nil {
		return fmt.Errorf("sandbox: creating log dir: %w", err)
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("sandbox: opening %s: %w", p.logPath, err)
	}
	defer f.Close() // the child holds its own copy of the descriptor
	if fi, err := f.Stat(); err == nil {
		p.logFrom = fi.Size()
	}
	fmt.Fprintf(f, "==== %s sandbox starts: %s %s\n", time.Now().Format(time.RFC3339), p.bin, strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	if p.name == Containerd || p.name == Kubelet {
		// GNU nice runs the command even where raising the priority is refused (it only warns).
		cmd = exec.Command("nice", append([]string{"-n", strconv.Itoa(-reservedNice), p.bin}, p.args...)...)
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout = f
	cmd.Stderr = f
	if detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sandbox: starting %s (%s): %w; see %s", p.name, p.bin, err, p.logPath)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return nil
}

// stop sends SIGTERM to the process group, waits, and sends SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	if p.cmd == nil || p.exited() {
		return
	}
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
	}
	// Children of the component (none expected) share its group: make sure none survive it.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// logTail returns the last n lines this run wrote to the log, indented for an error message.
func (p *process) logTail(n int) string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	from := p.logFrom
	if fi, err := f.Stat(); err == nil && fi.Size()-from > 16<<10 {
		from = fi.Size() - 16<<10
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return ""
	}
	data, _ := io.ReadAll(f)
	s := strings.TrimSpace(string(data))
	if s == "" {
		return ""
	}
	return lastLines(s, n)
}

func (p *process) portClash() bool {
	return strings.Contains(p.logTail(40), "address already in use")
}

// state is what <dir>/state.json records, so `sandbox down` (another process) can stop a detached cluster.
type state struct {
	Detach bool           `json:"detach"`
	Ports  map[string]int `json:"ports"`
	Procs  []stateProc    `json:"processes"`
	Node   *nodeState     `json:"realNode,omitempty"`
}

type stateProc struct {
	Name   string `json:"name"`
	PID    int    `json:"pid"`
	Binary string `json:"binary"`
}

const stateFile = "state.json"

func readState(dir string) (state, error) {
	var s state
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("sandbox: reading %s: %w", filepath.Join(dir, stateFile), err)
	}
	return s, nil
}

// alive reports whether pid still runs binary (a recycled pid must not be killed).
func alive(pid int, binary string) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	want, _ := filepath.EvalSymlinks(binary)
	return exe == binary || exe == want
}

// Down stops a cluster recorded in dir (typically started detached by `sandbox up`): SIGTERM to each
// process group, SIGKILL after 10 s. Stopping a cluster that is not running is not an error.
func Down(dir string) error {
	s, err := readState(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	byName := map[string]stateProc{}
	for _, p := range s.Procs {
		byName[p.Name] = p
	}
	for _, group := range stopOrder {
		for _, name := range group {
			if p, ok := byName[name]; ok && alive(p.PID, p.Binary) {
				_ = syscall.Kill(-p.PID, syscall.SIGTERM)
			}
		}
		deadline := time.Now().Add(stopGrace)
		for _, name := range group {
			p, ok := byName[name]
			if !ok {
				continue
			}
			for alive(p.PID, p.Binary) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond) // polling another process's exit: there is nothing to wait on
			}
			if alive(p.PID, p.Binary) {
				_ = syscall.Kill(-p.PID, syscall.SIGKILL)
			}
		}
		if group[0] == Containerd && s.Node != nil {
			if err := cleanupNode(s.Node); err != nil {
				return err // state.json stays, so `sandbox down` can try again
			}
		}
	}
	if err := os.Remove(filepath.Join(dir, stateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sandbox: removing state: %w", err)
	}
	return nil
}

// Running reports whether a cluster recorded in dir still has a live process.
func Running(dir string) bool {
	s, err := readState(dir)
	if err != nil {
		return false
	}
	for _, p := range s.Procs {
		if alive(p.PID, p.Binary) {
			return true
		}
	}
	return false
}
