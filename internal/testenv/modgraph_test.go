package testenv_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot returns the directory of the library's go.mod (module
// github.com/patbus/patbus), found upwards from the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module github.com/patbus/patbus\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod of github.com/patbus/patbus above the test's directory")
		}
		dir = parent
	}
}

// TestRootModuleGraphStaysLight checks that the heavy dependencies of the
// integration tests and the reference system (testcontainers-go, FerretDB
// with the SQLite and PostgreSQL drivers behind it) never enter the
// library's module graph: `go list -m all` at the repository root must not
// name them.
// A go.work at the root that joins the integration module would bring them
// in, so GOWORK is left to its default (find go.work upwards).
func TestRootModuleGraphStaysLight(t *testing.T) {
	root := repoRoot(t)
	cmd := exec.Command("go", "list", "-m", "all")
	cmd.Dir = root
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOWORK=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m all: %v\n%s", err, stderr.String())
	}
	var mods []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		mods = append(mods, sc.Text())
	}
	if len(mods) == 0 || mods[0] != "github.com/patbus/patbus" {
		t.Fatalf("go list -m all in %s does not start with the library's module:\n%s", root, out)
	}
	for _, m := range mods {
		l := strings.ToLower(m)
		if strings.Contains(l, "testcontainers") || strings.Contains(l, "ferretdb") ||
			strings.HasPrefix(l, "modernc.org/sqlite") || strings.HasPrefix(l, "github.com/jackc/pgx") {
			t.Errorf("the root module graph holds %q: heavy test dependencies belong to the integration module alone (is there a go.work at the root?)", m)
		}
	}
}
