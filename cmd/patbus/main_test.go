package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/pubsub"
	"github.com/patbus/patbus/services"
)

// The tests build the command once and run it as a user would, as a
// process of its own. The services it talks to are processes too: the
// test binary itself, started with PATBUS_CLI_TEST_SERVICE naming which.

var (
	binPath string
	// Every run uses exchanges of its own, so that it never sees another
	// run's services (or the examples') on a shared broker.
	runID        = "r" + patbus.NewTx()[:8] // never read as a number in a pattern
	testAct      = "clitest-" + runID + ".act"
	testRegistry = "clitest-" + runID + ".registry"
)

func TestMain(m *testing.M) {
	if name := os.Getenv("PATBUS_CLI_TEST_SERVICE"); name != "" {
		os.Exit(runTestService(name))
	}
	dir, err := os.MkdirTemp("", "patbus-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "patbus")
	build := exec.Command("go", "build", "-tags", "patbusfault", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the command:", err)
		os.Exit(1)
	}
	code := m.Run()
	stopServices()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// runTestService serves, until SIGINT or SIGTERM, one of the services the
// tests act on, with the exchanges given in PATBUS_ACT_EXCHANGE and
// PATBUS_REGISTRY_EXCHANGE:
//
//   - alpha@1.0.0: role:a,cmd:hop acts on role:b,cmd:echo inside its
//     handler (same tx), emits role:a,evt:hopped,run:<run>, and answers
//     {"hop": <echo's reply>};
//   - beta@1.0.0: role:b,cmd:echo answers its message; role:b,cmd:fail
//     answers the error not_found; role:b,cmd:slow waits for its deadline;
//   - gamma@1.0.0: role:g,cmd:ping, registered in Consul at
//     PATBUS_CLI_TEST_CONSUL.
func runTestService(name string) int {
	ctx := context.Background()
	b, err := bus.Open(ctx, os.Getenv("PATBUS_AMQP_URL"))
	if err != nil {
		fmt.Println("service:", err)
		return 1
	}
	defer b.Close()
	opts := []services.Option{services.WithBroker(b),
		services.WithExchanges(os.Getenv("PATBUS_ACT_EXCHANGE"), os.Getenv("PATBUS_REGISTRY_EXCHANGE")),
		services.WithHeartbeat(time.Second), services.WithDrainTimeout(time.Second)}
	if addr := os.Getenv("PATBUS_CLI_TEST_CONSUL"); addr != "" {
		opts = append(opts, services.WithConsul(addr), services.WithHealthTTL(2*time.Second))
	}
	svc, err := services.New(name, "1.0.0", opts...)
	if err != nil {
		fmt.Println("service:", err)
		return 1
	}
	switch name {
	case "alpha":
		ps, err := pubsub.New(ctx, b)
		if err != nil {
			fmt.Println("service:", err)
			return 1
		}
		err = svc.Add("role:a,cmd:hop", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
			r, err := svc.Act(ctx, "role:b,cmd:echo", map[string]any{"from": "alpha"})
			if err != nil {
				return nil, err
			}
			if err := ps.Emit(ctx, "role:a,evt:hopped,run:"+os.Getenv("PATBUS_CLI_TEST_RUN"), nil); err != nil {
				return nil, err
			}
			return map[string]any{"hop": json.RawMessage(r.Body)}, nil
		}))
		if err != nil {
			fmt.Println("service:", err)
			return 1
		}
	case "gamma":
		err = svc.Add("role:g,cmd:ping", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
			return "pong", nil
		}))
		if err != nil {
			fmt.Println("service:", err)
			return 1
		}
	case "beta":
		err = svc.Add("role:b,cmd:echo", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
			return m.Data, nil
		}))
		if err == nil {
			err = svc.Add("role:b,cmd:fail", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
				return nil, services.NewError("not_found", "user 7 not found").WithDetails(map[string]any{"uid": 7})
			}))
		}
		if err == nil {
			err = svc.Add("role:b,cmd:slow", services.HandlerFunc(func(ctx context.Context, m *services.Message) (any, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			}))
		}
		if err != nil {
			fmt.Println("service:", err)
			return 1
		}
	}
	if err := svc.Ready(ctx); err != nil {
		fmt.Println("service:", err)
		return 1
	}
	fmt.Println("service: ready")
	if err := svc.Run(ctx); err != nil {
		fmt.Println("service:", err)
		return 1
	}
	return 0
}

// testEnv is the environment of the command and the services in a test.
func testEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	url := testenv.AMQPURL(t)
	env := []string{}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATBUS_") || strings.HasPrefix(kv, "CONSUL_HTTP_ADDR=") || strings.HasPrefix(kv, "NO_COLOR=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PATBUS_AMQP_URL="+url, "PATBUS_ACT_EXCHANGE="+testAct, "PATBUS_REGISTRY_EXCHANGE="+testRegistry,
		"PATBUS_CLI_TEST_RUN="+runID, "HOME="+t.TempDir())
	return append(env, extra...)
}

var (
	servicesOnce sync.Once
	servicesErr  error
)

// startServices starts alpha and beta once for the whole test binary; they
// are stopped (SIGTERM, so that they leave the catalog) when it ends.
func startServices(t *testing.T) {
	t.Helper()
	env := testEnv(t)
	servicesOnce.Do(func() {
		for _, name := range []string{"beta", "alpha"} {
			var cmd *exec.Cmd
			cmd, servicesErr = startService(env, name)
			if servicesErr != nil {
				return
			}
			stopAtExit(cmd)
		}
	})
	if servicesErr != nil {
		t.Fatal(servicesErr)
	}
}

// startService starts the test service name in a process of its own and
// waits until it serves.
func startService(env []string, name string) (*exec.Cmd, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(env, "PATBUS_CLI_TEST_SERVICE="+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "service: ready" {
				ready <- ""
			} else {
				fmt.Fprintln(os.Stderr, name+":", sc.Text())
			}
		}
		ready <- "exited"
	}()
	select {
	case s := <-ready:
		if s != "" {
			_ = cmd.Wait()
			return nil, fmt.Errorf("service %s %s before it was ready", name, s)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("service %s not ready within 30s", name)
	}
	return cmd, nil
}

var (
	atExitMu sync.Mutex
	atExit   []*exec.Cmd
)

func stopAtExit(cmd *exec.Cmd) {
	atExitMu.Lock()
	defer atExitMu.Unlock()
	atExit = append(atExit, cmd)
}

// stopServices stops the service processes (SIGTERM: they leave the
// catalog) and deletes what they declared.
func stopServices() {
	atExitMu.Lock()
	defer atExitMu.Unlock()
	for _, cmd := range atExit {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	}
	if len(atExit) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, os.Getenv("PATBUS_AMQP_URL"))
	if err != nil {
		return
	}
	defer b.Close()
	for _, q := range []string{testAct + ".alpha@1.0.0", testAct + ".beta@1.0.0"} {
		_ = b.DeleteQueue(ctx, q)
	}
	for _, ex := range []string{testAct, testRegistry} {
		_ = b.DeleteExchange(ctx, ex)
	}
}

// result is what one run of the command did.
type result struct {
	stdout, stderr string
	code           int
}

// patbusCmd runs the command with args and stdin, bounded by a minute.
func patbusCmd(t *testing.T, env []string, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("patbus %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// broker opens a broker for the test's own checks, closed at its end.
func broker(t *testing.T) bus.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, testenv.AMQPURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
