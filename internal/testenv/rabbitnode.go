package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// RabbitNode is a private RabbitMQ node that one test starts, breaks and
// stops: its own node name, ports, data, log, config and plugin files and
// Erlang cookie, listening on 127.0.0.1 only, so that faults never touch
// the shared broker. It needs Debian's rabbitmq-server package. A node
// started alone comes from StartRabbitNode; the nodes of a cluster from
// StartRabbitCluster.
//
// The node announces its name to clients in its server properties
// ("node"), so that a client's log can say which node it reached.
type RabbitNode struct {
	t        testing.TB
	Name     string // Erlang node name, patbus-<kind>-<random>@localhost
	Port     int    // AMQP port on 127.0.0.1
	DistPort int    // Erlang distribution port on 127.0.0.1
	dir      string
	pidFile  string
	server   string
	ctl      string
	env      []string
}

// nodeBootTimeout bounds a start or restart of the node.
const nodeBootTimeout = 120 * time.Second

// rabbitBinaries finds rabbitmq-server and rabbitmqctl. The scripts in
// /usr/lib/rabbitmq/bin run as the calling user; Debian's /usr/sbin
// wrappers switch to the rabbitmq user and reset HOME, so they are the
// second choice.
func rabbitBinaries() (server, ctl string, ok bool) {
	for _, dir := range []string{"/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin"} {
		s, c := filepath.Join(dir, "rabbitmq-server"), filepath.Join(dir, "rabbitmqctl")
		if isExec(s) && isExec(c) {
			return s, c, true
		}
	}
	s, err1 := exec.LookPath("rabbitmq-server")
	c, err2 := exec.LookPath("rabbitmqctl")
	if err1 != nil || err2 != nil {
		return "", "", false
	}
	return s, c, true
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	p, err := pickPort()
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	return p
}

// pickPort returns a port on 127.0.0.1 that was free a moment ago.
func pickPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// needRabbitBinaries returns the server and CLI scripts, or skips the test
// (fails it where Required() is true) when rabbitmq-server is missing.
func needRabbitBinaries(t testing.TB) (server, ctl string) {
	t.Helper()
	server, ctl, ok := rabbitBinaries()
	if !ok {
		if Required() {
			t.Fatal("testenv: rabbitmq-server is required here but not installed (apt-get install rabbitmq-server)")
		}
		t.Skip("testenv: rabbitmq-server not installed: fault tests need a private broker node")
	}
	return server, ctl
}

func randomHex(n int) string {
	raw := make([]byte, n)
	_, _ = rand.Read(raw)
	return hex.EncodeToString(raw)
}

// StartRabbitNode starts a private node and registers its end (and the
// removal of its files) with t.Cleanup. Without rabbitmq-server installed it
// skips the test, or fails it where Required() is true.
func StartRabbitNode(t testing.TB) *RabbitNode {
	t.Helper()
	n := newRabbitNode(t, "fault", "", 0)
	start := time.Now()
	n.boot()
	t.Logf("testenv: private RabbitMQ node %s on 127.0.0.1:%d up in %v", n.Name, n.Port, time.Since(start).Round(time.Millisecond))
	return n
}

// newRabbitNode prepares a node's files and environment, and registers its
// end with t.Cleanup; it does not start it. An empty cookie lets the node
// make its own (a fresh HOME gets a fresh cookie); the nodes of a cluster
// share one. A positive tick sets the Erlang distribution's net_ticktime
// (how soon the other nodes take a silent node for down; default 60 s).
func newRabbitNode(t testing.TB, kind, cookie string, tick time.Duration) *RabbitNode {
	t.Helper()
	server, ctl := needRabbitBinaries(t)
	id := randomHex(4)
	dir, err := os.MkdirTemp("", "patbus-rabbit-"+id+"-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	n := &RabbitNode{
		t:        t,
		Name:     "patbus-" + kind + "-" + id + "@localhost",
		Port:     freePort(t),
		DistPort: freePort(t),
		dir:      dir,
		pidFile:  filepath.Join(dir, "node.pid"),
		server:   server,
		ctl:      ctl,
	}
	t.Cleanup(func() {
		n.kill()
		_ = os.RemoveAll(dir)
	})
	for _, sub := range []string{"mnesia", "log", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	home := filepath.Join(dir, "home")
	if cookie != "" {
		if err := os.WriteFile(filepath.Join(home, ".erlang.cookie"), []byte(cookie), 0o400); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	// No management plugin, no console log; a cluster heals a partition
	// by pausing the minority side.
	conf := filepath.Join(dir, "rabbitmq.conf")
	confText := "log.console = false\nlog.file.level = info\ncluster_partition_handling = pause_minority\n"
	if err := os.WriteFile(conf, []byte(confText), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	advanced := filepath.Join(dir, "advanced.config")
	kernel := ""
	if tick > 0 {
		kernel = fmt.Sprintf(", {kernel, [{net_ticktime, %d}]}", int(tick/time.Second))
	}
	advText := fmt.Sprintf("[{rabbit, [{server_properties, [{node, %q}]}]}%s].\n", n.Name, kernel)
	if err := os.WriteFile(advanced, []byte(advText), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	plugins := filepath.Join(dir, "enabled_plugins")
	if err := os.WriteFile(plugins, []byte("[].\n"), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	n.env = append(os.Environ(),
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.Port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(n.DistPort),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+n.pidFile,
		"RABBITMQ_CONFIG_FILE="+conf,
		"RABBITMQ_ADVANCED_CONFIG_FILE="+advanced,
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+plugins,
		"RABBITMQ_ALLOW_INPUT=false",
		// The CLI's own distribution ports: the default range holds
		// eleven, shared by every rabbitmqctl on the machine.
		"RABBITMQ_CTL_DIST_PORT_MIN=35672",
		"RABBITMQ_CTL_DIST_PORT_MAX=35872",
		"HOME="+home,
	)
	return n
}

// setPorts gives n new AMQP and distribution ports, for its next launch.
func (n *RabbitNode) setPorts(port, dist int) {
	n.Port, n.DistPort = port, dist
	for i, kv := range n.env {
		switch {
		case strings.HasPrefix(kv, "RABBITMQ_NODE_PORT="):
			n.env[i] = "RABBITMQ_NODE_PORT=" + strconv.Itoa(port)
		case strings.HasPrefix(kv, "RABBITMQ_DIST_PORT="):
			n.env[i] = "RABBITMQ_DIST_PORT=" + strconv.Itoa(dist)
		}
	}
}

// URL is the AMQP address of the node, with the default guest user.
func (n *RabbitNode) URL() string {
	return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.Port)
}

// Ctl runs rabbitmqctl against the node and returns its combined output.
func (n *RabbitNode) Ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), nodeBootTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.ctl, append([]string{"-n", n.Name}, args...)...)
	cmd.Env = n.env
	cmd.Dir = n.dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// MustCtl runs rabbitmqctl and fails the test on error.
func (n *RabbitNode) MustCtl(args ...string) string {
	n.t.Helper()
	out, err := n.Ctl(args...)
	if err != nil {
		n.t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// boot starts the server detached and waits until it takes AMQP
// connections.
func (n *RabbitNode) boot() {
	n.t.Helper()
	if err := n.launch(); err != nil {
		n.t.Fatal(err)
	}
	if err := n.awaitAMQP(nodeBootTimeout); err != nil {
		n.t.Fatal(err)
	}
}

// launch runs rabbitmq-server -detached, which returns at once.
func (n *RabbitNode) launch() error {
	_ = os.Remove(n.pidFile)
	cmd := exec.Command(n.server, "-detached")
	cmd.Env = n.env
	cmd.Dir = n.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("testenv: rabbitmq-server -detached (%s): %v\n%s", n.Name, err, out.String())
	}
	return nil
}

// awaitAMQP waits until an AMQP connection to the node succeeds. The
// listener opens at the end of the node's boot, so this replaces
// rabbitmqctl's wait and await_startup, which cost a CLI start (about a
// second of CPU) each.
func (n *RabbitNode) awaitAMQP(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		c, err := amqp.DialConfig(n.URL(), amqp.Config{
			Heartbeat: 10 * time.Second,
			Locale:    "en_US",
			Dial:      amqp.DefaultDial(2 * time.Second),
		})
		if err == nil {
			_ = c.Close()
			return nil
		}
		last = err
		if pid, ok := n.pid(); ok && syscall.Kill(pid, 0) != nil {
			return fmt.Errorf("testenv: node %s died while starting: %v\n%s", n.Name, last, n.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("testenv: node %s did not take AMQP connections within %v: %v\n%s", n.Name, timeout, last, n.logTail())
}

// logTail returns the end of the node's log, for failure messages.
func (n *RabbitNode) logTail() string {
	matches, _ := filepath.Glob(filepath.Join(n.dir, "log", "*.log"))
	var b strings.Builder
	for _, m := range matches {
		data, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", m, data)
	}
	return b.String()
}

// LogLines returns the lines of the node's logs that contain any of subs,
// for tests that check what the broker said (say, about a recovery).
func (n *RabbitNode) LogLines(subs ...string) []string {
	matches, _ := filepath.Glob(filepath.Join(n.dir, "log", "*.log"))
	var out []string
	for _, m := range matches {
		data, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			for _, s := range subs {
				if strings.Contains(line, s) {
					out = append(out, line)
					break
				}
			}
		}
	}
	return out
}

// StopApp stops the RabbitMQ application (the Erlang node stays up).
func (n *RabbitNode) StopApp() { n.t.Helper(); n.MustCtl("stop_app") }

// StartApp starts the RabbitMQ application again and waits for it.
func (n *RabbitNode) StartApp() {
	n.t.Helper()
	n.MustCtl("start_app")
	if err := n.awaitAMQP(nodeBootTimeout); err != nil {
		n.t.Fatal(err)
	}
}

// pid reads the OS process id of the node from its pid file.
func (n *RabbitNode) pid() (int, bool) {
	data, err := os.ReadFile(n.pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid, err == nil && pid > 0
}

// Pid returns the OS process id of the node.
func (n *RabbitNode) Pid() int {
	n.t.Helper()
	pid, ok := n.pid()
	if !ok {
		n.t.Fatalf("testenv: node %s: no pid file", n.Name)
	}
	return pid
}

// Kill9 kills the node with SIGKILL and waits until it is gone.
func (n *RabbitNode) Kill9() {
	n.t.Helper()
	if err := killAndWait(n.Pid()); err != nil {
		n.t.Fatalf("testenv: node %s: %v", n.Name, err)
	}
}

// killAndWait sends SIGKILL to pid and waits (up to 30 s) until it is gone.
func killAndWait(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill -9 %d: %v", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d still alive after SIGKILL", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// Pause stops the node's process with SIGSTOP: it holds its sockets open
// but answers nothing (a stalled broker, or a node cut off by a network
// partition); it returns once the process has stopped. Resume undoes it.
func (n *RabbitNode) Pause() {
	n.t.Helper()
	if err := stopProcess(n.Pid()); err != nil {
		n.t.Fatalf("testenv: %v", err)
	}
}

// Resume continues a node stopped by Pause.
func (n *RabbitNode) Resume() {
	n.t.Helper()
	if err := syscall.Kill(n.Pid(), syscall.SIGCONT); err != nil {
		n.t.Fatalf("testenv: kill -CONT: %v", err)
	}
}

// Restart starts the node again after Kill9 or Stop and waits for it. A
// cluster's node joins its cluster again by itself.
func (n *RabbitNode) Restart() {
	n.t.Helper()
	n.boot()
}

// Stop stops the node with rabbitmqctl stop (a clean shutdown); it is
// safe to call more than once. Restart starts it again.
func (n *RabbitNode) Stop() {
	pid, ok := n.pid()
	if !ok {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGCONT) // in case a test paused it
	if _, err := n.Ctl("stop", n.pidFile); err != nil {
		_ = killAndWait(pid)
	}
	_ = os.Remove(n.pidFile)
}

// kill ends the node at once (SIGCONT, then SIGKILL), for cleanup: its
// files are deleted next, so a clean shutdown would only cost time.
func (n *RabbitNode) kill() {
	pid, ok := n.pid()
	if !ok {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGCONT)
	_ = killAndWait(pid)
	_ = os.Remove(n.pidFile)
}
