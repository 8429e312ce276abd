package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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
)

// RabbitNode is a private RabbitMQ node that one test starts, breaks and
// stops: its own node name, ports, data, log, config and plugin files and
// Erlang cookie, listening on 127.0.0.1 only, so that faults never touch
// the shared broker. It needs Debian's rabbitmq-server package.
type RabbitNode struct {
	t       testing.TB
	Name    string // Erlang node name, patbus-fault-<random>@localhost
	Port    int    // AMQP port on 127.0.0.1
	dir     string
	pidFile string
	server  string
	ctl     string
	env     []string
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartRabbitNode starts a private node and registers its stop (and the
// removal of its files) with t.Cleanup. Without rabbitmq-server installed it
// skips the test, or fails it where Required() is true.
func StartRabbitNode(t testing.TB) *RabbitNode {
	t.Helper()
	server, ctl, ok := rabbitBinaries()
	if !ok {
		if Required() {
			t.Fatal("testenv: rabbitmq-server is required here but not installed (apt-get install rabbitmq-server)")
		}
		t.Skip("testenv: rabbitmq-server not installed: fault tests need a private broker node")
	}
	var raw [4]byte
	_, _ = rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	dir, err := os.MkdirTemp("", "patbus-rabbit-"+id+"-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	n := &RabbitNode{
		t:       t,
		Name:    "patbus-fault-" + id + "@localhost",
		Port:    freePort(t),
		dir:     dir,
		pidFile: filepath.Join(dir, "node.pid"),
		server:  server,
		ctl:     ctl,
	}
	dist := freePort(t)
	for _, sub := range []string{"mnesia", "log", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	conf := filepath.Join(dir, "rabbitmq.conf")
	if err := os.WriteFile(conf, []byte("log.console = false\nlog.file.level = info\n"), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	plugins := filepath.Join(dir, "enabled_plugins")
	if err := os.WriteFile(plugins, []byte("[].\n"), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// The node shares the Erlang cookie of the shared broker's user when
	// HOME holds one; a fresh HOME gets a fresh cookie from the server.
	home := filepath.Join(dir, "home")
	n.env = append(os.Environ(),
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.Port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(dist),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+n.pidFile,
		"RABBITMQ_CONFIG_FILE="+conf,
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+plugins,
		"RABBITMQ_ALLOW_INPUT=false",
		"HOME="+home,
	)
	t.Cleanup(func() {
		n.Stop()
		_ = os.RemoveAll(dir)
	})
	start := time.Now()
	n.boot()
	t.Logf("testenv: private RabbitMQ node %s on 127.0.0.1:%d up in %v", n.Name, n.Port, time.Since(start).Round(time.Millisecond))
	return n
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

// boot starts the server detached and waits until the app is running.
func (n *RabbitNode) boot() {
	n.t.Helper()
	_ = os.Remove(n.pidFile)
	cmd := exec.Command(n.server, "-detached")
	cmd.Env = n.env
	cmd.Dir = n.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		n.t.Fatalf("testenv: rabbitmq-server -detached: %v\n%s", err, out.String())
	}
	secs := strconv.Itoa(int(nodeBootTimeout / time.Second))
	if o, err := n.Ctl("wait", "--timeout", secs, n.pidFile); err != nil {
		n.t.Fatalf("testenv: node %s did not start: %v\n%s\n%s", n.Name, err, o, n.logTail())
	}
	if o, err := n.Ctl("await_startup", "--timeout", secs); err != nil {
		n.t.Fatalf("testenv: node %s did not start: %v\n%s\n%s", n.Name, err, o, n.logTail())
	}
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
	n.MustCtl("await_startup")
}

// Pid returns the OS process id of the node.
func (n *RabbitNode) Pid() int {
	n.t.Helper()
	data, err := os.ReadFile(n.pidFile)
	if err != nil {
		n.t.Fatalf("testenv: pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		n.t.Fatalf("testenv: pid file %q: %v", data, err)
	}
	return pid
}

// Kill9 kills the node with SIGKILL and waits until it is gone.
func (n *RabbitNode) Kill9() {
	n.t.Helper()
	pid := n.Pid()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		n.t.Fatalf("testenv: kill -9 %d: %v", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			n.t.Fatalf("testenv: node process %d still alive after SIGKILL", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pause stops the node's process with SIGSTOP: it holds its sockets open
// but answers nothing (a stalled broker). Resume undoes it.
func (n *RabbitNode) Pause() {
	n.t.Helper()
	if err := syscall.Kill(n.Pid(), syscall.SIGSTOP); err != nil {
		n.t.Fatalf("testenv: kill -STOP: %v", err)
	}
}

// Resume continues a node stopped by Pause.
func (n *RabbitNode) Resume() {
	n.t.Helper()
	if err := syscall.Kill(n.Pid(), syscall.SIGCONT); err != nil {
		n.t.Fatalf("testenv: kill -CONT: %v", err)
	}
}

// Restart starts the node again after Kill9 or Stop and waits for it.
func (n *RabbitNode) Restart() {
	n.t.Helper()
	n.boot()
}

// Stop stops the node; it is safe to call more than once.
func (n *RabbitNode) Stop() {
	data, err := os.ReadFile(n.pidFile)
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGCONT) // in case a test paused it
	}
	if _, err := n.Ctl("stop", n.pidFile); err != nil && pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = os.Remove(n.pidFile)
}
