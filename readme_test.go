package patbus_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeBlock is one Go program of README.md and what it must print.
type readmeBlock struct {
	line   int // where the block starts
	code   string
	output string
}

// readmeBlocks returns every ```go block of the README with the ```text
// block that follows it. Every Go block must be a whole program
// (package main) followed by its output, so that none of them can drift
// from the API.
func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	var cur *readmeBlock
	var fence string // the kind of fenced block we are in, "" outside
	var buf strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case fence == "" && strings.HasPrefix(line, "```"):
			fence = strings.TrimPrefix(line, "```")
			buf.Reset()
			if fence == "go" {
				blocks = append(blocks, readmeBlock{line: n})
				cur = &blocks[len(blocks)-1]
			}
			if fence == "" {
				fence = "plain"
			}
		case fence != "" && line == "```":
			switch {
			case fence == "go":
				cur.code = buf.String()
			case fence == "text" && cur != nil && cur.output == "":
				cur.output = buf.String()
				cur = nil
			}
			fence = ""
		case fence != "":
			buf.WriteString(line)
			buf.WriteByte('\n')
		}
	}
	for _, b := range blocks {
		if !strings.HasPrefix(b.code, "package main\n") || b.output == "" {
			t.Errorf("README.md:%d: a Go block must be a whole program (package main) followed by a ```text block with its output", b.line)
		}
	}
	if len(blocks) == 0 {
		t.Fatal("README.md has no Go block")
	}
	return blocks
}

var goLine = regexp.MustCompile(`(?m)^go (\S+)$`)

// TestREADME builds every Go program of the README as a module of its own
// that uses this checkout of patbus, runs it on the in-memory broker and
// compares what it prints with the output the README shows.
func TestREADME(t *testing.T) {
	blocks := readmeBlocks(t)
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	version := goLine.FindSubmatch(mod)
	if version == nil {
		t.Fatal("no go line in go.mod")
	}
	for _, b := range blocks {
		t.Run("line"+lineName(b.line), func(t *testing.T) {
			dir := t.TempDir()
			gomod := "module readme\n\ngo " + string(version[1]) + "\n\nrequire github.com/patbus/patbus v0.0.0\n\nreplace github.com/patbus/patbus => " + root + "\n"
			for name, content := range map[string]string{"go.mod": gomod, "go.sum": string(sum), "main.go": b.code} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "go", "run", ".")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "PATBUS_AMQP_URL=", "GOFLAGS=-mod=mod", "GOWORK=off")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("README.md:%d: go run: %v\n%s%s", b.line, err, stdout.String(), stderr.String())
			}
			if got := stdout.String(); got != b.output {
				t.Errorf("README.md:%d printed\n%s\nthe README shows\n%s", b.line, got, b.output)
			}
		})
	}
}

func lineName(n int) string { return fmt.Sprintf("%04d", n) }
