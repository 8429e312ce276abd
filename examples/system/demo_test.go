package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/patbus/patbus/examples/system/internal/systest"
	"github.com/patbus/patbus/internal/testenv"
)

// The walkthrough of --demo, as the README's main command runs it: on the
// embedded defaults (in-memory broker, embedded FerretDB), and on
// RabbitMQ and MongoDB.
func TestDemo(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		checkDemo(t, "--demo", "-amqp", "", "-mongodb", "", "-bcrypt-cost", "4")
	})
	t.Run("rabbitmq", func(t *testing.T) {
		checkDemo(t, "--demo", "-amqp", testenv.AMQPURL(t), "-mongodb", systest.MongoURI(t), "-bcrypt-cost", "4")
	})
}

func checkDemo(t *testing.T, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("system %q exited %d:\n%s\n%s", args, code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	want := []string{
		"gateway listening on http://127.0.0.1:",
		"> GET /user\n   < 200 OK [",
		`"name":"甲"`,
		`< 200 OK {"success":true,"user":`,
		`< 200 OK {"code":1000}`,
		`< 200 OK {"code":2100}`,
		`< 409 Conflict {"code":"conflict"`,
		`< 400 Bad Request {"code":"invalid_input"`,
		`< 404 Not Found {"code":"not_found","message":"no user with the id`,
		`< 200 OK {"success":false}`,
		`"system":"patbus reference system"`,
		`< {"state":1000,"msg":"ok","data":{"uid":`,
		"walkthrough done: every answer was the expected one",
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("the walkthrough does not show %q", w)
		}
	}
	if n := strings.Count(out, "   > "); n != len(walkthroughSteps())+1 {
		t.Errorf("%d requests shown, want %d", n, len(walkthroughSteps())+1)
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", out, stderr.String())
	}
}
