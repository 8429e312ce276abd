package patbus_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestModuleGraphKeepsOutHeavyDependencies checks DESIGN.md's rule that
// the embedded MongoDB-compatible server (FerretDB, with SQLite, PostgreSQL
// and MySQL drivers behind it) stays out of the library's module graph: it
// belongs to the reference system's module, examples/system. GOWORK=off
// makes `go list` read this module alone even where a go.work joins the
// modules.
func TestModuleGraphKeepsOutHeavyDependencies(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	cmd := exec.Command(goCmd, "list", "-m", "all")
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -m all: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 || lines[0] != "github.com/patbus/patbus" {
		t.Fatalf("go list -m all printed %q, not this module's graph", out)
	}
	for _, l := range lines {
		for _, banned := range []string{"github.com/FerretDB/", "modernc.org/sqlite", "github.com/jackc/pgx"} {
			if strings.HasPrefix(l, banned) {
				t.Errorf("the library's module graph holds %s (go mod why -m %s tells why)", l, strings.Fields(l)[0])
			}
		}
	}
}
