package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLogs(t *testing.T) {
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
	if err := run(ctx, b, &out, DefaultMessages, 3); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	var want []string
	for _, m := range DefaultMessages {
		want = append(want, " [x] Sent "+m)
		for i := 1; i <= 3; i++ {
			want = append(want, fmt.Sprintf("subscriber %d: [x] %s", i, m))
		}
	}
	got := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
