package patterns

import "testing"

func TestGlob(t *testing.T) {
	tests := []struct {
		name string
		glob string
		val  string
		want bool
	}{
		{"star matches empty", "*", "", true},
		{"star matches anything", "*", "abc", true},
		{"prefix", "x*", "xyz", true},
		{"prefix exact", "x*", "x", true},
		{"prefix miss", "x*", "yx", false},
		{"suffix", "*y", "xy", true},
		{"suffix miss", "*y", "yx", false},
		{"middle", "a*c", "abbbc", true},
		{"middle miss", "a*c", "abbb", false},
		{"two stars", "a*b*c", "axxbyyc", true},
		{"backtracking", "*ab", "aab", true},
		{"question one", "1?", "1a", true},
		{"question none", "1?", "1", false},
		{"question two", "1?", "1ab", false},
		{"question alone", "?", "", false},
		{"newline is a character", "a?b", "a\nb", true},
		{"double star is a literal star", "a**", "a*", true},
		{"double star literal not wildcard", "a**", "ab", false},
		{"star question is a literal question mark", "a*?", "a?", true},
		{"star question not wildcard", "a*?", "ab", false},
		{"triple star", "***", "*xyz", true},
		{"triple star needs literal", "***", "xyz", false},
		{"question star", "?*", "", false},
		{"question star one", "?*", "x", true},
		{"accent is one unit", "?", "é", true},
		{"emoji is two units", "??", "😀", true},
		{"emoji is not one unit", "?", "😀", false},
		{"emoji literal", "😀*", "😀x", true},
		{"case sensitive", "A*", "abc", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := compileGlob(tt.glob)
			if got := g.matchValue(tt.val, nil); got != tt.want {
				t.Errorf("glob %q on %q = %v, want %v", tt.glob, tt.val, got, tt.want)
			}
			if got := g.matchValue("", []byte(tt.val)); got != tt.want {
				t.Errorf("glob %q on bytes %q = %v, want %v", tt.glob, tt.val, got, tt.want)
			}
		})
	}
}
