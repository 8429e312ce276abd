package patterns

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Globs follow gex, the glob library Patrun uses: '*' matches any run of
// characters (including none), '?' matches exactly one, and the escapes
// "**" and "*?" stand for a literal '*' and '?'. Like JavaScript, gex counts
// characters in UTF-16 code units, so a character outside the Basic
// Multilingual Plane (an emoji, say) is two characters to '?'. The matcher
// below works on UTF-16 units to give the same answers.

type globTok struct {
	kind uint8  // tokLit, tokOne or tokStar
	u    uint16 // the unit for tokLit
}

const (
	tokLit = iota
	tokOne
	tokStar
)

// isGlob reports whether a value is a glob, as Patrun's GexMatcher decides:
// it holds '*' or '?'.
func isGlob(s string) bool { return strings.ContainsAny(s, "*?") }

// appendGlob compiles the glob src into tokens, one per UTF-16 unit.
func appendGlob(dst []globTok, src string) []globTok {
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '*' && i+1 < len(src) && src[i+1] == '*':
			dst = append(dst, globTok{kind: tokLit, u: '*'})
			i += 2
		case c == '*' && i+1 < len(src) && src[i+1] == '?':
			dst = append(dst, globTok{kind: tokLit, u: '?'})
			i += 2
		case c == '*':
			dst = append(dst, globTok{kind: tokStar})
			i++
		case c == '?':
			dst = append(dst, globTok{kind: tokOne})
			i++
		case c < utf8.RuneSelf:
			dst = append(dst, globTok{kind: tokLit, u: uint16(c)})
			i++
		default:
			r, n := utf8.DecodeRuneInString(src[i:])
			i += n
			if r >= 0x10000 {
				r1, r2 := utf16.EncodeRune(r)
				dst = append(dst, globTok{kind: tokLit, u: uint16(r1)}, globTok{kind: tokLit, u: uint16(r2)})
			} else {
				dst = append(dst, globTok{kind: tokLit, u: uint16(r)})
			}
		}
	}
	return dst
}

// appendUnits appends the UTF-16 units of s.
func appendUnits(dst []uint16, s string) []uint16 {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			dst = append(dst, uint16(c))
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			dst = append(dst, uint16(r1), uint16(r2))
		} else {
			dst = append(dst, uint16(r))
		}
	}
	return dst
}

// appendUnitsBytes appends the UTF-16 units of b.
func appendUnitsBytes(dst []uint16, b []byte) []uint16 {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			dst = append(dst, uint16(c))
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		i += n
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			dst = append(dst, uint16(r1), uint16(r2))
		} else {
			dst = append(dst, uint16(r))
		}
	}
	return dst
}

// globMatch reports whether the units v match the compiled glob toks as a
// whole. It backtracks only to the last star, which is enough for '*' and
// '?' and keeps it linear in practice.
func globMatch(toks []globTok, v []uint16) bool {
	p, s := 0, 0
	starP, starS := -1, 0
	for s < len(v) {
		if p < len(toks) {
			t := toks[p]
			if t.kind == tokStar {
				starP, starS = p, s
				p++
				continue
			}
			if t.kind == tokOne || t.u == v[s] {
				p++
				s++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		p = starP + 1
		starS++
		s = starS
	}
	for p < len(toks) && toks[p].kind == tokStar {
		p++
	}
	return p == len(toks)
}

// glob is a compiled glob value, as the router keeps it.
type glob struct {
	src  string
	toks []globTok
}

func compileGlob(src string) glob {
	return glob{src: src, toks: appendGlob(nil, src)}
}

// matchValue matches a message value given as a string (b == nil) or bytes.
// ASCII values (all numbers, most strings) are matched in place; others are
// converted to UTF-16 units in a stack buffer (values longer than 128 units
// then allocate).
func (g *glob) matchValue(s string, b []byte) bool {
	if b != nil {
		if isASCII(b) {
			return globMatchASCII(g.toks, b)
		}
	} else if isASCII(s) {
		return globMatchASCII(g.toks, s)
	}
	var ub [128]uint16
	var units []uint16
	if b != nil {
		units = appendUnitsBytes(ub[:0], b)
	} else {
		units = appendUnits(ub[:0], s)
	}
	return globMatch(g.toks, units)
}

func isASCII[S string | []byte](s S) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// globMatchASCII is globMatch for a value that is all ASCII, where each
// byte is one UTF-16 unit.
func globMatchASCII[S string | []byte](toks []globTok, v S) bool {
	p, s := 0, 0
	starP, starS := -1, 0
	for s < len(v) {
		if p < len(toks) {
			t := toks[p]
			if t.kind == tokStar {
				starP, starS = p, s
				p++
				continue
			}
			if t.kind == tokOne || t.u == uint16(v[s]) {
				p++
				s++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		p = starP + 1
		starS++
		s = starS
	}
	for p < len(toks) && toks[p].kind == tokStar {
		p++
	}
	return p == len(toks)
}
