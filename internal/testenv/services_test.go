package testenv_test

import (
	"bufio"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/patbus/patbus/internal/testenv"
)

// TestSharedConsul checks the agent that CONSUL_HTTP_ADDR names (the one
// scripts/services.sh starts) answers with a leader and runs ConsulVersion.
func TestSharedConsul(t *testing.T) {
	addr := testenv.ConsulAddr(t)
	hasLeader(t, addr)
	var self struct{ Config struct{ Version string } }
	if err := json.Unmarshal([]byte(mustConsul(t, addr, "GET", "/v1/agent/self", "", 200)), &self); err != nil {
		t.Fatal(err)
	}
	if self.Config.Version != testenv.ConsulVersion {
		t.Errorf("the agent at %s runs Consul %q, want %s", addr, self.Config.Version, testenv.ConsulVersion)
	}
}

// TestSharedRedis checks the server that PATBUS_REDIS_ADDR names answers
// PING.
func TestSharedRedis(t *testing.T) {
	addr := testenv.RedisAddr(t)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if line != "+PONG\r\n" {
		t.Fatalf("PING: %q, want +PONG", line)
	}
}
