package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patbus/patbus/internal/testenv"
)

// services lists the catalog of the services in other processes, as a
// table and as JSON lines.
func TestServices(t *testing.T) {
	startServices(t)
	env := testEnv(t)
	r := patbusCmd(t, env, nil, "services")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "SERVICE") ||
		!strings.HasPrefix(lines[1], "alpha") || !strings.Contains(lines[1], "cmd:hop,role:a") ||
		!strings.HasPrefix(lines[2], "beta") || !strings.Contains(lines[2], "cmd:echo,role:b") ||
		!strings.Contains(lines[3], "cmd:fail,role:b") || !strings.Contains(lines[4], "cmd:slow,role:b") {
		t.Errorf("table:\n%s", r.stdout)
	}
	r = patbusCmd(t, env, nil, "services", "--json")
	var got []serviceJSON
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var s serviceJSON
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		got = append(got, s)
	}
	if len(got) != 2 {
		t.Fatalf("%d services: %s", len(got), r.stdout)
	}
	b := got[1]
	if b.Service != "beta" || b.Version != "1.0.0" || b.Queue != testAct+".beta@1.0.0" || len(b.Instances) != 1 ||
		strings.Join(b.Patterns, " ") != "cmd:echo,role:b cmd:fail,role:b cmd:slow,role:b" {
		t.Errorf("beta: %+v", b)
	}
	// The services announce every second: a heartbeat is at most a few old.
	if age := b.Instances[0].AgeMS; age < 0 || age > 5000 {
		t.Errorf("heartbeat age %dms", age)
	}
}

// explain says which pattern wins and why, with the candidates in the
// order of Patrun's walk; it acts on nothing.
func TestExplain(t *testing.T) {
	startServices(t)
	env := testEnv(t)
	r := patbusCmd(t, env, nil, "explain", "role:b,cmd:echo,x:1")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"winner   cmd:echo,role:b",
		"answers  beta@1.0.0",
		`cmd: "echo" exact`,
		`role: "b" exact -> cmd:echo,role:b`,
		"1. cmd:echo,role:b  beta@1.0.0  <- wins",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = patbusCmd(t, env, nil, "explain", "--json", `{"role":"b","cmd":"nothing"}`)
	var ex explainJSON
	if err := json.Unmarshal([]byte(r.stdout), &ex); err != nil {
		t.Fatalf("not JSON: %q", r.stdout)
	}
	if ex.Found || len(ex.Candidates) != 0 || len(ex.Steps) == 0 {
		t.Errorf("no winner expected: %+v", ex)
	}
	r = patbusCmd(t, env, nil, "explain", "--json", "--", `{"role":"b","cmd":"echo","$$version":"2.0.0"}`)
	if err := json.Unmarshal([]byte(r.stdout), &ex); err != nil {
		t.Fatalf("not JSON: %q", r.stdout)
	}
	if !ex.Found || ex.Winner != "cmd:echo,role:b" || ex.ChosenBy != "" {
		t.Errorf("a version pin nobody serves: %+v", ex)
	}
}

// With Consul, services shows each version's health there.
func TestServicesConsul(t *testing.T) {
	consul := testenv.ConsulAddr(t)
	env := testEnv(t, "CONSUL_HTTP_ADDR="+consul)
	cmd, err := startService(append(env, "PATBUS_CLI_TEST_CONSUL="+consul), "gamma")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		b := broker(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.DeleteQueue(ctx, testAct+".gamma@1.0.0")
	})
	var g serviceJSON
	waitFor(t, 20*time.Second, "gamma passing in Consul", func() bool {
		r := patbusCmd(t, env, nil, "services", "--json", "--wait", "1s")
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			if json.Unmarshal([]byte(l), &g) == nil && g.Service == "gamma" && g.Health == "passing" {
				return true
			}
		}
		return false
	})
	if len(g.Instances) != 1 || g.Instances[0].Health != "passing" {
		t.Errorf("gamma: %+v", g)
	}
	r := patbusCmd(t, env, nil, "services", "--wait", "1s")
	if !strings.Contains(r.stdout, "HEALTH") || !regexp.MustCompile(`gamma +1\.0\.0 +1 +.* ago +passing +cmd:ping,role:g`).MatchString(r.stdout) {
		t.Errorf("table:\n%s", r.stdout)
	}
}
