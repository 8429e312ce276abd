package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// screen collects what a program writes to its terminal.
type screen struct {
	mu  sync.Mutex
	buf strings.Builder
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

func (s *screen) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ansiRE.ReplaceAllString(s.buf.String(), "")
}

// waitText waits until the screen, from offset from, holds want; it
// returns the offset after it.
func (s *screen) waitText(t *testing.T, from int, want string) int {
	t.Helper()
	var i int
	waitFor(t, 15*time.Second, "the terminal to show "+want, func() bool {
		txt := s.text()
		if from > len(txt) {
			from = len(txt)
		}
		i = strings.Index(txt[from:], want)
		return i >= 0
	})
	return from + i + len(want)
}

// The REPL driven through a pseudo-terminal: a line acts and prints the
// reply; an error reply prints its code; Tab completes a pattern from the
// catalog pair by pair; the up arrow brings the last line back; the
// history is kept in its file; Ctrl-D leaves.
func TestREPL(t *testing.T) {
	startServices(t)
	env := testEnv(t)
	history := filepath.Join(t.TempDir(), "history")
	cmd := exec.Command(binPath, "repl", "--history", history)
	cmd.Env = append(env, "TERM=xterm", "NO_COLOR=1")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	s := &screen{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			s.mu.Lock()
			s.buf.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	press := func(keys string) {
		t.Helper()
		if _, err := tty.Write([]byte(keys)); err != nil {
			t.Fatal(err)
		}
	}
	at := s.waitText(t, 0, "service versions in the catalog")
	at = s.waitText(t, at, "patbus> ")

	// A line acts and prints the reply, indented on a terminal.
	press("role:b,cmd:echo user:asd,pass:123\r")
	at = s.waitText(t, at, `"pass": 123,`)
	at = s.waitText(t, at, `"user": "asd"`)
	at = s.waitText(t, at, "patbus> ")

	// An error reply prints its code and message.
	press("role:b,cmd:fail\r")
	at = s.waitText(t, at, "error not_found from beta@1.0.0: user 7 not found")
	at = s.waitText(t, at, "patbus> ")

	// Tab completes pair by pair from the catalog: "role:a" has one
	// pattern, so "cmd:" completes to "cmd:hop".
	press("role:a,cm\t")
	at = s.waitText(t, at, "role:a,cmd:hop")
	press("\r")
	at = s.waitText(t, at, `"from": "alpha"`)
	at = s.waitText(t, at, "patbus> ")

	// The up arrow brings the last line back.
	press("\x1b[A\r")
	at = s.waitText(t, at, `"from": "alpha"`)
	at = s.waitText(t, at, "patbus> ")

	// Ctrl-C cancels a slow act, well before its 5s timeout; at the
	// prompt it clears the line.
	start := time.Now()
	press("role:b,cmd:slow\r")
	waitFor(t, 10*time.Second, "the act under way", func() bool {
		return strings.Contains(s.text()[at:], "role:b,cmd:slow")
	})
	press("\x03")
	at = s.waitText(t, at, "patbus repl: interrupted")
	at = s.waitText(t, at, "patbus> ")
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("Ctrl-C ended the act after %s", took)
	}
	press("role:b,cmd:e\x03")
	at = s.waitText(t, at, "^C")
	at = s.waitText(t, at, "patbus> ")

	// A bad pattern says where.
	press("role:b,cmd:\r")
	at = s.waitText(t, at, "malformed pattern at offset 11")
	at = s.waitText(t, at, "patbus> ")
	press(".services\r")
	at = s.waitText(t, at, "beta@1.0.0 (1 instances)")
	s.waitText(t, at, "patbus> ")

	// Ctrl-D leaves with status 0.
	press("\x04")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("repl after Ctrl-D: %v\n%s", err, s.text())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("repl still running after Ctrl-D\n%s", s.text())
	}
	h, err := os.ReadFile(history)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"role:b,cmd:echo user:asd,pass:123\n", "role:b,cmd:fail\n", "role:a,cmd:hop"} {
		if !strings.Contains(string(h), l) {
			t.Errorf("history %q lacks %q", h, l)
		}
	}
}

func TestSplitLine(t *testing.T) {
	for _, tc := range []struct{ line, pattern, rest string }{
		{"role:user,cmd:login user:asd,pass:123", "role:user,cmd:login", "user:asd,pass:123"},
		{"role: user, cmd: login  {\"user\": \"a b\"}", "role: user, cmd: login", `{"user": "a b"}`},
		{"a:'x y',b:1 c:2", "a:'x y',b:1", "c:2"},
		{"{a:1, b:2} c:3", "{a:1, b:2}", "c:3"},
		{"role:user", "role:user", ""},
	} {
		p, r := splitLine(tc.line)
		if p != tc.pattern || r != tc.rest {
			t.Errorf("splitLine(%q) = %q, %q; want %q, %q", tc.line, p, r, tc.pattern, tc.rest)
		}
	}
}
