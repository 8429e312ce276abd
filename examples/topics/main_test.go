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

func TestTopics(t *testing.T) {
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
		" [x] Sent account-server.info:user 2 logged in",
		" [x] Sent config-server.info:configuration reloaded",
		" [x] Sent config-server.error:cannot read settings.json",
		"[#.info] [x] account-server.info:user 2 logged in",
		"[#.info] [x] config-server.info:configuration reloaded",
		"[*.error] [x] config-server.error:cannot read settings.json",
	}
	got := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTopicMatch(t *testing.T) {
	cases := []struct {
		binding, key string
		want         bool
	}{
		{"#.info", "account-server.info", true},
		{"#.info", "info", true},
		{"#.info", "a.b.info", true},
		{"*.error", "config-server.error", true},
		{"*.error", "error", false},
		{"*.error", "a.b.error", false},
		{"#", "", true},
		{"a.*", "a.b.c", false},
	}
	for _, c := range cases {
		if got := topicMatch(c.binding, c.key); got != c.want {
			t.Errorf("topicMatch(%q, %q) = %v", c.binding, c.key, got)
		}
	}
}
