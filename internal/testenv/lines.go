package testenv

import (
	"sort"
	"strings"
	"testing"
)

// SameLines fails the test, without stopping it, unless out holds exactly
// the lines of want, each as often, in any order: for output written by
// several goroutines. Trailing newlines of out are ignored. It sorts neither
// argument in place.
func SameLines(t testing.TB, out string, want []string) {
	t.Helper()
	got := strings.Split(strings.TrimRight(out, "\n"), "\n")
	want = append([]string(nil), want...)
	sort.Strings(got)
	sort.Strings(want)
	if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
		t.Errorf("got\n%s\nwant\n%s", g, w)
	}
}
