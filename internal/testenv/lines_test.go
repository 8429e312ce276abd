package testenv_test

import (
	"testing"

	"github.com/patbus/patbus/internal/testenv"
)

func TestSameLines(t *testing.T) {
	want := []string{"b", "a", "a"}
	for _, c := range []struct {
		out  string
		same bool
	}{
		{"a\nb\na\n", true},
		{"a\na\nb", true},
		{"a\nb\n", false},
		{"a\nb\na\na\n", false},
		{"a\nb\nc\n", false},
		{"", false},
	} {
		ft := &fakeT{}
		testenv.SameLines(ft, c.out, want)
		if ft.failed == c.same {
			t.Errorf("SameLines(%q, %q) failed=%v, want %v", c.out, want, ft.failed, !c.same)
		}
	}
	if want[0] != "b" || want[1] != "a" {
		t.Errorf("SameLines sorted its argument: %q", want)
	}
}

// fakeT records Errorf.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Errorf(string, ...any) { f.failed = true }
