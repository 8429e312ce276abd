package services_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/services"
)

// runChild is the service process of the tests that need one
// (TestRunProcessSIGTERM, the Consul tests): TestMain runs it when
// PATBUS_TEST_CHILD names the service. It serves cmd:slow (each act takes
// 20ms) as version PATBUS_TEST_CHILD_VERSION (default 1.0.0), with Consul
// at PATBUS_TEST_CHILD_CONSUL when set, until Run returns, and returns the
// exit status.
func runChild(name string) int {
	ctx := context.Background()
	b, err := bus.Open(ctx, os.Getenv("PATBUS_AMQP_URL"))
	if err != nil {
		fmt.Println("child:", err)
		return 1
	}
	defer b.Close()
	version := os.Getenv("PATBUS_TEST_CHILD_VERSION")
	if version == "" {
		version = "1.0.0"
	}
	opts := []services.Option{services.WithBroker(b), services.WithExchanges(testAct, testRegistry),
		services.WithPrefetch(8), services.WithDrainTimeout(5 * time.Second)}
	if addr := os.Getenv("PATBUS_TEST_CHILD_CONSUL"); addr != "" {
		// A long heartbeat, a short TTL: once killed, Consul knows it is
		// gone well before the catalog would.
		opts = append(opts, services.WithConsul(addr), services.WithHealthTTL(time.Second), services.WithHeartbeat(time.Minute))
	}
	svc, err := services.New(name, version, opts...)
	if err == nil {
		err = services.AddFunc(svc, "cmd:slow", func(ctx context.Context, in struct{ N int }) (string, error) {
			time.Sleep(20 * time.Millisecond)
			return fmt.Sprintf("child %d", in.N), nil
		})
	}
	if err == nil {
		fmt.Println("child: serving")
		err = svc.Run(ctx)
	}
	if err != nil {
		fmt.Println("child:", err)
		return 1
	}
	fmt.Println("child: drained")
	return 0
}

// startChild starts runChild in a process of its own, killed at the end of
// the test, with the extra environment given.
func startChild(t *testing.T, env ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env...)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, out
}

// SIGTERM to a service process while 200 acts are in flight: every act
// gets its answer (from the process, or from another instance after the
// process gave it back), and the process exits 0 within its drain timeout.
func TestRunProcessSIGTERM(t *testing.T) {
	url := testenv.AMQPURL(t)
	e := newRabbitEnv(t)
	name := e.name("sigterm")
	cmd, out := startChild(t, "PATBUS_TEST_CHILD="+name, "PATBUS_AMQP_URL="+url)

	caller := e.svc(e.name("caller"), "1.0.0", nil)
	waitFor(t, caller, "cmd:slow,$$target:"+name)
	// A second instance of the same version, in this process.
	e.svc(name, "1.0.0", func(s *services.Service) {
		_ = services.AddFunc(s, "cmd:slow", func(ctx context.Context, in struct{ N int }) (string, error) {
			time.Sleep(20 * time.Millisecond)
			return fmt.Sprintf("parent %d", in.N), nil
		})
	})

	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	answers := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := services.Call[string](ctx, caller, "cmd:slow", map[string]any{"$$target": name, "N": i})
			if err != nil {
				errs <- err
				return
			}
			answers <- s
		}()
	}
	// Signal once the child has answered some.
	deadline := time.Now().Add(20 * time.Second)
	for len(answers) < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the child exited with %v after SIGTERM:\n%s", err, out.String())
		}
		t.Logf("the child drained and exited in %v", time.Since(sent).Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatalf("the child did not exit within its drain timeout:\n%s", out.String())
	}
	wg.Wait()
	close(errs)
	close(answers)
	for err := range errs {
		t.Errorf("an act failed: %v", err)
	}
	byChild := 0
	for a := range answers {
		if strings.HasPrefix(a, "child") {
			byChild++
		}
	}
	t.Logf("%d acts answered by the child, %d by the other instance", byChild, n-byChild)
	if !strings.Contains(out.String(), "child: drained") {
		t.Errorf("the child did not drain:\n%s", out.String())
	}
}
