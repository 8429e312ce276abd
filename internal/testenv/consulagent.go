package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ConsulVersion is the Consul version the tests run: the one
// tools/consul/go.mod requires and scripts/consul.sh builds.
const ConsulVersion = "1.13.9"

// consulBootTimeout bounds a start of an agent until it has a leader, and
// consulStopTimeout a graceful stop before the process is killed.
const (
	consulBootTimeout = 60 * time.Second
	consulStopTimeout = 30 * time.Second
)

// ConsulBinary returns the path of the Consul binary: PATBUS_CONSUL_BIN if
// set, else consul-<ConsulVersion> in ${PATBUS_CACHE:-$HOME/.cache/patbus},
// where scripts/consul.sh builds it. It does not check that the file exists.
func ConsulBinary() string {
	if p := os.Getenv("PATBUS_CONSUL_BIN"); p != "" {
		return p
	}
	cache := os.Getenv("PATBUS_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "patbus")
	}
	return filepath.Join(cache, "consul-"+ConsulVersion)
}

// ConsulPorts are the ports of a Consul agent's listeners on 127.0.0.1.
type ConsulPorts struct {
	HTTP    int // HTTP API
	DNS     int // DNS interface, TCP and UDP
	SerfLAN int // LAN gossip, TCP and UDP
	SerfWAN int // WAN gossip, TCP and UDP
	Server  int // server RPC
	GRPC    int // gRPC (xDS)
}

// ConsulAgent is a private Consul dev agent that one test starts, stops,
// kills or stalls: a single server, its own node name, data directory and
// log, every listener on 127.0.0.1 on a port of its own, so that faults
// never touch the shared agent of CONSUL_HTTP_ADDR. Start brings it back on
// the same ports, so clients reconnect to the same address.
//
// A dev agent keeps the catalog and the KV store in memory: after Stop or
// Kill and Start they are empty again, as after a real outage that lost
// them. Services and checks registered through the agent's own endpoints
// (/v1/agent/service/register) are kept in its data directory, and the
// agent registers them again when it starts.
//
// Its methods are meant for the test's goroutine; they are safe to call
// concurrently all the same.
type ConsulAgent struct {
	t     testing.TB
	Node  string      // node name, patbus-consul-<random>
	Ports ConsulPorts // its listeners, the same across restarts
	bin   string
	dir   string

	mu     sync.Mutex
	cmd    *exec.Cmd     // the running agent; nil when stopped
	exited chan struct{} // closed when cmd has exited
	paused bool
}

// StartConsulAgent starts a private Consul dev agent from ConsulBinary,
// waits until it has elected itself leader, and registers its stop and the
// removal of its files with t.Cleanup. Without the binary it skips the
// test, or fails it where Required() is true.
func StartConsulAgent(t testing.TB) *ConsulAgent {
	t.Helper()
	bin := ConsulBinary()
	if !isExec(bin) {
		if Required() {
			t.Fatalf("testenv: the Consul binary %s is required here but missing (scripts/consul.sh builds it; PATBUS_CONSUL_BIN names another)", bin)
		}
		t.Skipf("testenv: the Consul binary %s is missing: scripts/consul.sh builds it", bin)
	}
	var raw [4]byte
	_, _ = rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	dir, err := os.MkdirTemp("", "patbus-consul-"+id+"-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	a := &ConsulAgent{t: t, Node: "patbus-consul-" + id, bin: bin, dir: dir}
	t.Cleanup(func() {
		a.Stop()
		_ = os.RemoveAll(dir)
	})
	start := time.Now()
	// A port taken by someone else between choosing it and the agent's
	// bind makes the agent exit: then it starts on other ports.
	for attempt := 1; ; attempt++ {
		a.Ports = freeConsulPorts(t)
		err := a.boot()
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("testenv: Consul agent did not start: %v\n%s", err, a.logTail())
		}
		t.Logf("testenv: Consul agent did not start (attempt %d), trying other ports: %v", attempt, err)
	}
	t.Logf("testenv: private Consul agent %s on %s up in %v", a.Node, a.Addr(), time.Since(start).Round(time.Millisecond))
	return a
}

// freeConsulPorts returns six distinct ports that are free on 127.0.0.1
// for both TCP and UDP at the time of the call.
func freeConsulPorts(t testing.TB) ConsulPorts {
	t.Helper()
	var held []io.Closer
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	var ports [6]int
	for i := range ports {
		for try := 0; ; try++ {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatalf("testenv: free port: %v", err)
			}
			held = append(held, l)
			p := l.Addr().(*net.TCPAddr).Port
			u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err == nil {
				held = append(held, u)
				ports[i] = p
				break
			}
			if try == 100 {
				t.Fatalf("testenv: no port free for both TCP and UDP: %v", err)
			}
		}
	}
	return ConsulPorts{HTTP: ports[0], DNS: ports[1], SerfLAN: ports[2], SerfWAN: ports[3], Server: ports[4], GRPC: ports[5]}
}

// Addr is the agent's HTTP address in the host:port form that
// CONSUL_HTTP_ADDR and the Consul API's Config.Address take.
func (a *ConsulAgent) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.Ports.HTTP))
}

// Pid returns the agent's process id, or 0 while it is stopped.
func (a *ConsulAgent) Pid() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// Start starts the agent again after Stop or Kill, on the same ports and
// with the same data directory, and waits until it has a leader. It fails
// the test if the agent is running or does not come up within a minute.
func (a *ConsulAgent) Start() {
	a.t.Helper()
	if err := a.boot(); err != nil {
		a.t.Fatalf("testenv: start Consul agent %s: %v\n%s", a.Node, err, a.logTail())
	}
}

// Stop stops the agent gracefully (SIGINT) and waits until its process has
// exited, killing it after 30 seconds. It is safe to call more than once
// and on a stopped agent; a paused agent is resumed first.
func (a *ConsulAgent) Stop() { a.halt(syscall.SIGINT) }

// Kill kills the agent with SIGKILL, as a crash would, and waits until its
// process is gone. It does nothing on a stopped agent.
func (a *ConsulAgent) Kill() { a.halt(syscall.SIGKILL) }

// Pause stops the agent's process with SIGSTOP: its sockets stay open but
// it answers nothing (a stalled Consul). Resume undoes it; Stop and Kill
// work on a paused agent.
func (a *ConsulAgent) Pause() { a.t.Helper(); a.signalPaused(syscall.SIGSTOP, true) }

// Resume continues an agent stopped by Pause.
func (a *ConsulAgent) Resume() { a.t.Helper(); a.signalPaused(syscall.SIGCONT, false) }

func (a *ConsulAgent) signalPaused(sig syscall.Signal, paused bool) {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		a.t.Fatalf("testenv: Consul agent %s is not running", a.Node)
	}
	if sig == syscall.SIGSTOP {
		if err := stopProcess(a.cmd.Process.Pid); err != nil {
			a.t.Fatalf("testenv: Consul agent: %v", err)
		}
	} else if err := a.cmd.Process.Signal(sig); err != nil {
		a.t.Fatalf("testenv: signal Consul agent: %v", err)
	}
	a.paused = paused
}

// halt sends sig to the running agent (after SIGCONT if paused) and waits
// for it to exit, escalating to SIGKILL after consulStopTimeout.
func (a *ConsulAgent) halt(sig syscall.Signal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return
	}
	p := a.cmd.Process
	if a.paused && sig != syscall.SIGKILL {
		_ = p.Signal(syscall.SIGCONT)
	}
	_ = p.Signal(sig)
	select {
	case <-a.exited:
	case <-time.After(consulStopTimeout):
		_ = p.Kill()
		<-a.exited
	}
	a.cmd, a.exited, a.paused = nil, nil, false
}

// boot starts the agent's process and waits until the agent has a leader.
// On failure the process is gone again.
func (a *ConsulAgent) boot() error {
	a.mu.Lock()
	if a.cmd != nil {
		a.mu.Unlock()
		return errors.New("the agent is running")
	}
	if err := os.MkdirAll(filepath.Join(a.dir, "data"), 0o700); err != nil {
		a.mu.Unlock()
		return err
	}
	logf, err := os.OpenFile(filepath.Join(a.dir, "consul.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		a.mu.Unlock()
		return err
	}
	p := a.Ports
	cmd := exec.Command(a.bin, "agent", "-dev",
		"-client", "127.0.0.1", "-bind", "127.0.0.1",
		"-node", a.Node,
		"-data-dir", filepath.Join(a.dir, "data"),
		"-http-port", strconv.Itoa(p.HTTP),
		"-dns-port", strconv.Itoa(p.DNS),
		"-serf-lan-port", strconv.Itoa(p.SerfLAN),
		"-serf-wan-port", strconv.Itoa(p.SerfWAN),
		"-server-port", strconv.Itoa(p.Server),
		"-grpc-port", strconv.Itoa(p.GRPC),
		"-hcl", "disable_update_check = true",
	)
	cmd.Dir = a.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Start()
	_ = logf.Close() // the child holds its own descriptor
	if err != nil {
		a.mu.Unlock()
		return fmt.Errorf("start %s: %w", a.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	a.cmd, a.exited = cmd, exited
	a.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), consulBootTimeout)
	defer cancel()
	if err := waitConsulLeader(ctx, a.Addr(), exited); err != nil {
		a.Kill()
		return err
	}
	return nil
}

// waitConsulLeader polls the agent at addr until /v1/status/leader names a
// leader, the context ends or exited is closed.
func waitConsulLeader(ctx context.Context, addr string, exited <-chan struct{}) error {
	// No keep-alive: no idle connection outlives the wait.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		leader, err := consulLeader(ctx, client, addr)
		if err == nil && leader != "" {
			return nil
		}
		if err != nil {
			last = err
		} else {
			last = errors.New("no leader yet")
		}
		select {
		case <-exited:
			return errors.New("the agent exited")
		case <-ctx.Done():
			return fmt.Errorf("no leader at %s: %w (last: %v)", addr, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// consulLeader returns the leader's address that the agent at addr reports,
// "" while there is none.
func consulLeader(ctx context.Context, client *http.Client, addr string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/status/leader", nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s: %s", resp.Status, body)
	}
	return strings.Trim(strings.TrimSpace(string(body)), `"`), nil
}

// logTail returns the end of the agent's log, for failure messages.
func (a *ConsulAgent) logTail() string {
	data, err := os.ReadFile(filepath.Join(a.dir, "consul.log"))
	if err != nil {
		return ""
	}
	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}
	return "--- consul.log\n" + string(data)
}
