package main

import (
	"context"
	"io"
	"testing"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTopics(t *testing.T) { testenv.EachBroker(t, check) }

func check(t *testing.T, b bus.Broker) {
	out := testenv.Output(t, b, func(ctx context.Context, b bus.Broker, out io.Writer) error {
		return run(ctx, b, out, DefaultLines)
	})
	want := []string{
		" [x] Sent account-server.info:user 2 logged in",
		" [x] Sent config-server.info:configuration reloaded",
		" [x] Sent config-server.error:cannot read settings.json",
		"[#.info] [x] account-server.info:user 2 logged in",
		"[#.info] [x] config-server.info:configuration reloaded",
		"[*.error] [x] config-server.error:cannot read settings.json",
	}
	testenv.SameLines(t, out, want)
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
