package main

import (
	"encoding/json"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// act against services in other processes: the reply, a typed error, no
// route, a timeout, each with its output and exit status.
func TestAct(t *testing.T) {
	startServices(t)
	env := testEnv(t)
	cases := []struct {
		name       string
		args       []string
		stdin      string
		code       int
		stdout     string // exact, when not empty
		stderrHas  string
		stdoutJSON map[string]any // fields the --json output must hold
	}{
		{name: "reply", args: []string{"act", "role:b,cmd:echo", "x:1,y:hello"}, stdout: `{"cmd":"echo","role":"b","x":1,"y":"hello"}` + "\n"},
		{name: "json input", args: []string{"act", "role:b,cmd:echo", `{"n": 12345678901234567890}`}, stdout: `{"cmd":"echo","n":12345678901234567890,"role":"b"}` + "\n"},
		{name: "stdin", args: []string{"act", "role:b,cmd:echo", "-"}, stdin: "{\n  \"a\": [1, 2]\n}\n", stdout: `{"a":[1,2],"cmd":"echo","role":"b"}` + "\n"},
		{name: "pattern wins over input", args: []string{"act", "role:b,cmd:echo", `{"cmd":"other"}`}, stdout: `{"cmd":"echo","role":"b"}` + "\n"},
		{name: "two hops", args: []string{"act", "role:a,cmd:hop"}, stdout: `{"hop":{"cmd":"echo","from":"alpha","role":"b"}}` + "\n"},
		{name: "pinned", args: []string{"act", "--target", "beta", "--version", "1.0.0", "role:b,cmd:echo"}, stdout: `{"$$target":"beta","$$version":"1.0.0","cmd":"echo","role":"b"}` + "\n"},
		{name: "typed error", args: []string{"act", "role:b,cmd:fail"}, code: 1, stderrHas: `error not_found from beta@1.0.0: user 7 not found`},
		{name: "typed error json", args: []string{"act", "--json", "role:b,cmd:fail"}, code: 1,
			stdoutJSON: map[string]any{"error": map[string]any{"code": "not_found", "message": "user 7 not found", "details": map[string]any{"uid": float64(7)},
				"service": "beta", "version": "1.0.0", "pattern": "cmd:fail,role:b"}}},
		{name: "no route", args: []string{"act", "role:nobody,cmd:x"}, code: 3, stderrHas: "no route: nobody serves role:nobody,cmd:x"},
		{name: "pinned to nobody", args: []string{"act", "--version", "9.9.9", "role:b,cmd:echo"}, code: 3, stderrHas: "no route"},
		// The caller's timer or the service's answer at the deadline,
		// whichever comes first: both say timeout, both exit 4.
		{name: "timeout", args: []string{"act", "--timeout", "700ms", "role:b,cmd:slow"}, code: 4, stderrHas: "timeout"},
		{name: "reply json", args: []string{"act", "--json", "--tx", "4bf92f3577b34da6a3ce929d0e0e4736", "role:b,cmd:echo"}, stdoutJSON: map[string]any{
			"result": map[string]any{"cmd": "echo", "role": "b"}, "service": "beta", "version": "1.0.0", "tx": "4bf92f3577b34da6a3ce929d0e0e4736"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := patbusCmd(t, env, strings.NewReader(tc.stdin), tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			if tc.stdout != "" && r.stdout != tc.stdout {
				t.Errorf("stdout %q, want %q", r.stdout, tc.stdout)
			}
			if tc.stderrHas != "" && !strings.Contains(r.stderr, tc.stderrHas) {
				t.Errorf("stderr %q does not say %q", r.stderr, tc.stderrHas)
			}
			if tc.stdoutJSON != nil {
				var got map[string]any
				if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
					t.Fatalf("stdout is not one JSON object: %v\n%s", err, r.stdout)
				}
				for k, want := range tc.stdoutJSON {
					if !jsonHas(got[k], want) {
						t.Errorf("%s = %v, want %v (stdout %s)", k, got[k], want, r.stdout)
					}
				}
			}
			if tc.code == 3 && time.Since(start) > 4*time.Second {
				t.Errorf("no route took %s: it must fail at once, not at the timeout", time.Since(start))
			}
		})
	}
}

// jsonHas reports whether got holds every field of want (recursively).
func jsonHas(got, want any) bool {
	wm, ok := want.(map[string]any)
	if !ok {
		return got == want
	}
	gm, ok := got.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range wm {
		if !jsonHas(gm[k], v) {
			return false
		}
	}
	return true
}

// Bad input is a usage error (2) that says where the problem is, before
// anything is sent.
func TestActBadInput(t *testing.T) {
	env := testEnv(t)
	cases := []struct {
		name  string
		args  []string
		stdin string
		has   []string
	}{
		{"pattern", []string{"act", "role:user,cmd:"}, "", []string{"malformed pattern at offset 14", `missing value for "cmd"`}},
		{"json", []string{"act", "role:b,cmd:echo", "{\"a\":1,\n\"b\":}"}, "", []string{"malformed JSON at line 2, column 5"}},
		{"stdin json", []string{"act", "role:b,cmd:echo", "-"}, "{\n\n  \"a\": tru\n}", []string{"stdin: malformed JSON at line 3"}},
		{"not an object", []string{"act", "role:b,cmd:echo", "[1,2]"}, "", []string{"not a JSON object"}},
		{"no pattern", []string{"act"}, "", []string{"want PATTERN"}},
		{"unknown flag", []string{"act", "--bogus", "a:1"}, "", []string{"flag provided but not defined: -bogus"}},
		{"unknown command", []string{"frobnicate"}, "", []string{`unknown command "frobnicate"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := patbusCmd(t, env, strings.NewReader(tc.stdin), tc.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\nstderr: %s", r.code, r.stderr)
			}
			for _, h := range tc.has {
				if !strings.Contains(r.stderr, h) {
					t.Errorf("stderr %q does not say %q", r.stderr, h)
				}
			}
		})
	}
}

// A broker that is down, or that refuses the credentials, fails within
// --timeout with one line that never shows the password.
func TestBrokerUnavailable(t *testing.T) {
	env := testEnv(t)
	u, err := url.Parse(envValue(env, "PATBUS_AMQP_URL"))
	if err != nil {
		t.Fatal(err)
	}
	user := "guest"
	if u.User != nil {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, "s3cr3t-pw")
	wrongPassword := u.String()
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	u.Host = closed
	cases := []struct{ name, url, has string }{
		{"refused credentials", wrongPassword, "cannot connect to RabbitMQ at amqp://" + user + ":xxxxx@"},
		{"down", u.String(), "connection refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, args := range [][]string{
				{"act", "--timeout", "1s", "role:b,cmd:echo"},
				{"enqueue", "--timeout", "1s", "q", "{}"},
				{"tail", "--timeout", "1s"},
			} {
				e := append(append([]string{}, env...), "PATBUS_AMQP_URL="+tc.url)
				start := time.Now()
				r := patbusCmd(t, e, strings.NewReader(""), args...)
				took := time.Since(start)
				if r.code != 5 {
					t.Errorf("%s: exit %d, want 5\nstderr: %s", args[0], r.code, r.stderr)
				}
				if took > 3*time.Second {
					t.Errorf("%s: took %s with --timeout 1s", args[0], took)
				}
				if strings.Contains(r.stderr+r.stdout, "s3cr3t-pw") {
					t.Errorf("%s: the password shows: %s", args[0], r.stderr)
				}
				if !strings.Contains(r.stderr, tc.has) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
					t.Errorf("%s: stderr %q: want one line saying %q", args[0], r.stderr, tc.has)
				}
			}
		})
	}
}

// envValue returns the value of key in env (the last one wins).
func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// Every command's --help shows its usage with examples, exits 0, and never
// prints the broker's password from the environment.
func TestHelp(t *testing.T) {
	env := append(testEnv(t), "PATBUS_AMQP_URL=amqp://guest:s3cr3t-pw@127.0.0.1:5672/")
	for _, c := range commands() {
		args := []string{c.name, "--help"}
		if c.name == "dlq" {
			args = []string{"dlq", "list", "--help"}
		}
		r := patbusCmd(t, env, nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage: patbus "+c.name) {
			t.Errorf("%s --help: exit %d\n%s%s", c.name, r.code, r.stdout, r.stderr)
		}
		if c.name != "version" && !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("%s --help has no examples", c.name)
		}
		if strings.Contains(r.stdout+r.stderr, "s3cr3t-pw") {
			t.Errorf("%s --help shows the password", c.name)
		}
	}
	r := patbusCmd(t, env, nil, "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Exit status:") {
		t.Errorf("--help: %d %s", r.code, r.stdout)
	}
	if r := patbusCmd(t, env, nil); r.code != 2 {
		t.Errorf("no command: exit %d, want 2", r.code)
	}
}
