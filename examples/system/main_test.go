package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

func TestMongoDBCommandServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()

	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(runCtx, []string{"mongodb", "-addr", "127.0.0.1:0"}, pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no URI printed: %v (stderr: %s)", err, stderr.String())
	}
	uri := strings.TrimSpace(line)
	if !strings.HasPrefix(uri, "mongodb://127.0.0.1:") {
		t.Fatalf("printed %q, not a URI on 127.0.0.1", uri)
	}
	go io.Copy(io.Discard, pr)

	var out bytes.Buffer
	if c := run(ctx, []string{"ping", "-uri", uri}, &out, &out); c != 0 || strings.TrimSpace(out.String()) != "ok" {
		t.Fatalf("ping exited %d: %s", c, out.String())
	}

	stop()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("mongodb exited %d: %s", c, stderr.String())
		}
	case <-ctx.Done():
		t.Fatal("mongodb did not stop after its context was cancelled")
	}

	out.Reset()
	if c := run(ctx, []string{"ping", "-uri", uri, "-timeout", "300ms"}, &out, &out); c != 1 {
		t.Fatalf("ping of the stopped server exited %d, want 1: %s", c, out.String())
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"help"}, 0, "usage: system [flags]"},
		{[]string{"-h"}, 0, "-demo"},
		{[]string{"user", "-h"}, 0, "MONGODB_URI"},
		{[]string{"gateway", "-h"}, 0, "examples:"},
		{[]string{"-namespace", "a b"}, 2, "may hold only"},
		{[]string{"user", "-log-level", "loud"}, 2, "not a level"},
		{[]string{"probe"}, 2, "give one URL"},
		{[]string{"nosuch"}, 2, `unknown command "nosuch"`},
		{[]string{"mongodb", "-nosuch"}, 2, "flag provided but not defined"},
		{[]string{"mongodb", "extra"}, 2, "unexpected arguments"},
		{[]string{"mongodb", "-addr", "0.0.0.0:0"}, 1, "only loopback addresses"},
		{[]string{"ping", "-uri", ""}, 2, "-uri is empty"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		c := run(context.Background(), tt.args, &out, &out)
		if c != tt.code || !strings.Contains(out.String(), tt.want) {
			t.Errorf("system %q: exit %d, output %q; want %d and %q", tt.args, c, out.String(), tt.code, tt.want)
		}
	}
}
