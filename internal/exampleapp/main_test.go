package exampleapp

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// kind runs as an example and prints the broker it was given.
func kind(ctx context.Context, b bus.Broker, out io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "%T\n", b)
	return err
}

func newFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func TestStartMemory(t *testing.T) {
	var out bytes.Buffer
	if err := start(newFlags(), nil, "", &out, kind); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "*bus.Memory\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

func TestStartRabbitMQ(t *testing.T) {
	url := testenv.AMQPURL(t)
	for _, c := range []struct {
		name     string
		args     []string
		addr     string
		want     string
		wantArgs []string
	}{
		{"default from the environment", []string{"x", "y"}, url, "*bus.Rabbit\n", []string{"x", "y"}},
		{"flag over the default", []string{"-amqp", url, "x"}, "", "*bus.Rabbit\n", []string{"x"}},
		{"empty flag means memory", []string{"-amqp", ""}, url, "*bus.Memory\n", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := newFlags()
			var out bytes.Buffer
			if err := start(fs, c.args, c.addr, &out, kind); err != nil {
				t.Fatal(err)
			}
			if out.String() != c.want {
				t.Errorf("output %q, want %q", out.String(), c.want)
			}
			if fmt.Sprint(fs.Args()) != fmt.Sprint(c.wantArgs) {
				t.Errorf("args %q, want %q", fs.Args(), c.wantArgs)
			}
		})
	}
}

func TestStartOwnFlags(t *testing.T) {
	fs := newFlags()
	n := fs.Int("n", 1, "a flag of the example's own")
	var got int
	err := start(fs, []string{"-n", "3"}, "", io.Discard, func(ctx context.Context, b bus.Broker, out io.Writer) error {
		got = *n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != 3 {
		t.Errorf("run saw -n %d, want 3", got)
	}
}

func TestStartErrors(t *testing.T) {
	boom := errors.New("boom")
	var seen bus.Broker
	err := start(newFlags(), nil, "", io.Discard, func(ctx context.Context, b bus.Broker, out io.Writer) error {
		seen = b
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("run's error: got %v", err)
	}
	// The broker is closed once run returned, whatever it returned.
	ctx := context.Background()
	if _, err := seen.DeclareQueue(ctx, bus.Queue{Name: "q"}); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("broker after run: %v, want bus.ErrClosed", err)
	}

	called := false
	never := func(context.Context, bus.Broker, io.Writer) error { called = true; return nil }
	if err := start(newFlags(), []string{"-nope"}, "", io.Discard, never); err == nil {
		t.Error("an unknown flag was accepted")
	}
	if err := start(newFlags(), nil, "http://127.0.0.1:1/", io.Discard, never); err == nil {
		t.Error("a bad address was accepted")
	}
	if called {
		t.Error("run was called after a failure")
	}
}

func TestPrinterWritesWholeLines(t *testing.T) {
	var buf bytes.Buffer
	p := NewPrinter(&buf)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				p.Printf("line %d-%d", i, j)
			}
		}(i)
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 400 {
		t.Fatalf("%d lines, want 400", len(lines))
	}
	for _, l := range lines {
		var i, j int
		if n, err := fmt.Sscanf(l, "line %d-%d", &i, &j); n != 2 || err != nil {
			t.Fatalf("torn line %q", l)
		}
	}
}

func TestAwait(t *testing.T) {
	ch := make(chan struct{}, 3)
	for i := 0; i < 3; i++ {
		ch <- struct{}{}
	}
	if err := Await(context.Background(), ch, 3); err != nil {
		t.Fatalf("Await with 3 ready: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ch <- struct{}{}
	if err := Await(ctx, ch, 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("Await short of values on an ended ctx: %v, want context.Canceled", err)
	}
}
