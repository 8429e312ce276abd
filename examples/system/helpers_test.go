package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"go.uber.org/goleak"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/patbus/patbus/examples/system/internal/systest"
	"github.com/patbus/patbus/examples/system/user"
	"github.com/patbus/patbus/store"
)

// childEnv names the environment variable that makes the test binary run
// the command instead of the tests: its value is the command line, as a
// JSON array.
const childEnv = "PATBUS_SYSTEM_TEST_CHILD"

func TestMain(m *testing.M) {
	if args := os.Getenv(childEnv); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, argv, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	// Keep-alive connections to servers of other processes (nginx, the
	// system's children) close when those servers do, which may be after
	// the last test: their two goroutines are the only ones let go.
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"))
}

// child is the command running in a process of its own: the test binary,
// re-executed with childEnv.
type child struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	out   strings.Builder // stdout and stderr
	lines chan string     // stdout, line by line
	done  chan struct{}   // closed when the process has exited
}

// startChild runs the command line args in a new process, killed at the
// end of the test.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	argv, _ := json.Marshal(args)
	c := &child{cmd: exec.Command(os.Args[0]), lines: make(chan string, 100), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), childEnv+"="+string(argv))
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.out.Write(p)
	})
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			c.out.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
			select {
			case c.lines <- sc.Text():
			default:
			}
		}
		_ = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
	})
	return c
}

// output returns what the process printed so far.
func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// waitLine waits for a line of stdout that holds sub and returns it.
func (c *child) waitLine(t *testing.T, sub string, within time.Duration) string {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case l := <-c.lines:
			if strings.Contains(l, sub) {
				return l
			}
		case <-c.done:
			t.Fatalf("the process %v exited before printing %q:\n%s", c.cmd.Args, sub, c.output())
		case <-deadline:
			t.Fatalf("the process did not print %q within %v:\n%s", sub, within, c.output())
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// testSettings returns settings for a system of the test's own: the
// broker at amqp ("" for the in-memory one), a database and a namespace
// of its own on MongoDB (MONGODB_URI, or an embedded FerretDB), removed
// at the end of the test.
func testSettings(t testing.TB, amqp string) *settings {
	t.Helper()
	s := &settings{
		amqp:      amqp,
		mongoURI:  systest.MongoURI(t),
		database:  systest.Name("patbus_test_"),
		namespace: systest.Name("patbus-test-"),
		logLevel:  "warn",
	}
	if err := s.check(testWriter{t}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if amqp != "" {
			if err := removeTopologyAt(ctx, s); err != nil {
				t.Logf("remove the test's exchanges and queues: %v", err)
			}
		}
		if err := dropDatabase(ctx, s); err != nil {
			t.Logf("drop the test's database: %v", err)
		}
	})
	return s
}

// testWriter writes to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// cheapHashes makes the user module hash with bcrypt's minimum cost, so
// that tests that create many users stay quick.
func cheapHashes() user.Option { return user.WithBcryptCost(bcrypt.MinCost) }

// do sends one request and returns the status, the headers and the body.
func do(t testing.TB, c *http.Client, method, url, body string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// decodeUser decodes a user's JSON.
func decodeUser(t testing.TB, body string) user.User {
	t.Helper()
	var u user.User
	if err := json.Unmarshal([]byte(body), &u); err != nil || !store.ValidID(u.ID) {
		t.Fatalf("not a user: %s (%v)", body, err)
	}
	return u
}
