package main

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRouting(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		b, err := bus.NewMemory()
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		check(t, b)
	})
	t.Run("rabbitmq", func(t *testing.T) {
		url := testenv.AMQPURL(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := bus.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		check(t, b)
	})
}

func check(t *testing.T, b bus.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, b, &out, DefaultLines); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	want := []string{
		" [x] Sent info:service started",
		" [x] Sent warning:disk 80% full",
		" [x] Sent error:cannot reach the database",
		" [x] Sent info:request served in 12ms",
		" [x] Sent severity:high",
		" [x] Sent error:request failed",
		"[info subscriber] [x] info:service started",
		"[info subscriber] [x] info:request served in 12ms",
		"[warning subscriber] [x] warning:disk 80% full",
		"[error subscriber] [x] error:cannot reach the database",
		"[error subscriber] [x] error:request failed",
		"[severity subscriber] [x] severity:high",
	}
	got := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
