package testenv_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patbus/patbus/internal/testenv"
)

// consulHTTP calls the Consul HTTP API at addr and returns the status code
// and body. Keep-alives are off, so no connection outlives the call.
func consulHTTP(ctx context.Context, addr, method, path, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// mustConsul is consulHTTP within 10 seconds that fails the test on error
// or on a status other than want.
func mustConsul(t *testing.T, addr, method, path, body string, want int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, out, err := consulHTTP(ctx, addr, method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, out)
	}
	return out
}

// hasLeader fails the test unless the agent at addr reports a leader.
func hasLeader(t *testing.T, addr string) {
	t.Helper()
	if l := mustConsul(t, addr, "GET", "/v1/status/leader", "", 200); strings.Trim(l, "\"\n") == "" {
		t.Fatalf("agent at %s has no leader: %q", addr, l)
	}
}

// refused fails the test unless nothing accepts connections at addr.
func refused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
}

// gone fails the test if process pid still exists.
func gone(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d: kill -0 = %v, want ESRCH (gone)", pid, err)
	}
}

func TestConsulAgent(t *testing.T) {
	var addr string
	var pids []int
	t.Run("lifecycle", func(t *testing.T) {
		a := testenv.StartConsulAgent(t)
		addr = a.Addr()
		p := a.Ports
		if addr != "127.0.0.1:"+strconv.Itoa(p.HTTP) {
			t.Errorf("Addr() = %s, HTTP port %d", addr, p.HTTP)
		}
		seen := map[int]bool{}
		for _, port := range []int{p.HTTP, p.DNS, p.SerfLAN, p.SerfWAN, p.Server, p.GRPC} {
			if port <= 0 || seen[port] {
				t.Fatalf("ports %+v: each must be a distinct port", p)
			}
			seen[port] = true
			// The agent listens on every one of them.
			c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
			if err != nil {
				t.Fatalf("ports %+v: %v", p, err)
			}
			c.Close()
		}
		hasLeader(t, addr)
		pids = append(pids, a.Pid())

		mustConsul(t, addr, "PUT", "/v1/kv/patbus/testenv", "one", 200)
		if v := mustConsul(t, addr, "GET", "/v1/kv/patbus/testenv?raw", "", 200); v != "one" {
			t.Fatalf("kv: got %q, want one", v)
		}
		mustConsul(t, addr, "PUT", "/v1/agent/service/register", `{"Name":"patbus-testenv","ID":"patbus-testenv-1"}`, 200)

		// Stop: the process is gone and the port refuses connections.
		a.Stop()
		if a.Pid() != 0 {
			t.Errorf("Pid() = %d after Stop, want 0", a.Pid())
		}
		gone(t, pids[0])
		refused(t, addr)
		a.Stop() // a second Stop does nothing

		// Start: the same address answers again. The KV store was in
		// memory; the agent's own registration was kept on disk.
		a.Start()
		if a.Addr() != addr {
			t.Fatalf("address changed from %s to %s", addr, a.Addr())
		}
		hasLeader(t, addr)
		pids = append(pids, a.Pid())
		mustConsul(t, addr, "GET", "/v1/kv/patbus/testenv", "", 404)
		if s := mustConsul(t, addr, "GET", "/v1/agent/services", "", 200); !strings.Contains(s, `"patbus-testenv-1"`) {
			t.Errorf("registration lost across Stop and Start: %s", s)
		}

		// Pause: the agent holds its port but answers nothing.
		a.Pause()
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, _, err := consulHTTP(ctx, addr, "GET", "/v1/status/leader", "")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("paused agent: %v, want a timeout", err)
		}
		a.Resume()
		hasLeader(t, addr)

		// Kill: gone at once, and Start brings it back.
		a.Kill()
		gone(t, pids[1])
		refused(t, addr)
		a.Kill() // nothing to kill
		a.Start()
		hasLeader(t, addr)
		pids = append(pids, a.Pid())

		// Stop works on a paused agent; the cleanup stops a running one.
		a.Pause()
		a.Stop()
		gone(t, pids[2])
		a.Start()
		pids = append(pids, a.Pid())
	})
	if len(pids) != 4 {
		if testenv.Required() {
			t.Fatalf("the lifecycle subtest ended early")
		}
		return
	}
	// The subtest's cleanup stopped the agent.
	gone(t, pids[3])
	refused(t, addr)
}

func TestStartConsulAgentWithoutBinary(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-consul")
	t.Setenv("PATBUS_CONSUL_BIN", missing)
	for _, c := range []struct {
		name       string
		require    string
		skip, fail bool
	}{
		{"outside CI", "", true, false},
		{"required", "1", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("CI", "")
			t.Setenv("PATBUS_REQUIRE_SERVICES", c.require)
			_, out := run(t, testenv.StartConsulAgent)
			if out.skipped != c.skip || out.failed != c.fail {
				t.Fatalf("skipped %v, failed %v (%q); want skipped %v, failed %v", out.skipped, out.failed, out.msg, c.skip, c.fail)
			}
			if !strings.Contains(out.msg, missing) || !strings.Contains(out.msg, "scripts/consul.sh") {
				t.Errorf("message %q should name %s and scripts/consul.sh", out.msg, missing)
			}
		})
	}
}

func TestConsulBinary(t *testing.T) {
	t.Setenv("HOME", "/home/patbus")
	t.Setenv("PATBUS_CONSUL_BIN", "")
	t.Setenv("PATBUS_CACHE", "")
	if got, want := testenv.ConsulBinary(), "/home/patbus/.cache/patbus/consul-"+testenv.ConsulVersion; got != want {
		t.Errorf("default: %s, want %s", got, want)
	}
	t.Setenv("PATBUS_CACHE", "/var/cache/p")
	if got, want := testenv.ConsulBinary(), "/var/cache/p/consul-"+testenv.ConsulVersion; got != want {
		t.Errorf("PATBUS_CACHE: %s, want %s", got, want)
	}
	t.Setenv("PATBUS_CONSUL_BIN", "/opt/consul")
	if got := testenv.ConsulBinary(); got != "/opt/consul" {
		t.Errorf("PATBUS_CONSUL_BIN: %s, want /opt/consul", got)
	}
}

// TestConsulVersionIsPinned checks that ConsulVersion is the version that
// tools/consul/go.mod pins, which scripts/consul.sh builds and caches.
func TestConsulVersionIsPinned(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "tools", "consul", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var pinned []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && f[0] == "github.com/hashicorp/consul" {
			pinned = append(pinned, f[1])
		}
	}
	if len(pinned) != 1 || pinned[0] != "v"+testenv.ConsulVersion {
		t.Fatalf("tools/consul/go.mod requires github.com/hashicorp/consul %v; testenv.ConsulVersion is %s", pinned, testenv.ConsulVersion)
	}
}
