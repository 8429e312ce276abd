package patterns

import (
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Parse parses the text form of a pattern, a subset of jsonic:
//
//	role:user,cmd:login
//	{ role: user, cmd: login }
//	a:1, b:1.5, c:true, d:"x,y:z", e:'it\'s', f:x*
//
// Pairs are separated by commas; spaces, tabs and newlines may surround
// every token; the whole may be wrapped in braces. Keys and values are bare
// words or quoted strings ("..." or '...', with JSON escapes and \'). A bare
// word is a run of characters other than whitespace, control characters
// and , : { } [ ] " '. A bare value that is a JSON number is normalized to
// the form JavaScript prints (1.0 -> "1", 1e2 -> "100"); true and false are
// kept as "true" and "false"; a bare null is an error (a pattern cannot hold
// null); any other bare word is a string. Quoted values are always strings,
// kept verbatim. A value holding '*' or '?' is a glob.
//
// The empty string (or "{}") is the empty pattern, which matches every
// message. Errors are *SyntaxError values wrapping ErrInvalidPattern; they
// name the byte offset and what was expected, e.g.
// `patterns: invalid pattern: missing value for "cmd" at offset 13`.
// Duplicate keys, empty keys and keys ending in '$' are errors too. Parse
// never panics.
func Parse(s string) (Pattern, error) {
	if !utf8.ValidString(s) {
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				return Pattern{}, &SyntaxError{Offset: i, Msg: "invalid UTF-8"}
			}
			i += n
		}
	}
	p := parser{s: s}
	pairs, err := p.parse()
	if err != nil {
		return Pattern{}, err
	}
	if len(pairs) == 0 {
		return Pattern{}, nil
	}
	// Keys and values were checked while parsing.
	sortPairs(pairs)
	return Pattern{pairs: pairs}, nil
}

type parser struct {
	s string
	i int
}

func (p *parser) errf(off int, msg string) error {
	return &SyntaxError{Offset: off, Msg: msg}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// isDelim reports whether c ends a bare word.
func isDelim(c byte) bool {
	switch c {
	case ',', ':', '{', '}', '[', ']', '"', '\'':
		return true
	}
	return c <= ' ' || c == 0x7f
}

func (p *parser) skipSpace() {
	for p.i < len(p.s) && isSpace(p.s[p.i]) {
		p.i++
	}
}

// describe names the character at offset i for an error message.
func (p *parser) describe(i int) string {
	if i >= len(p.s) {
		return "end of input"
	}
	r, _ := utf8.DecodeRuneInString(p.s[i:])
	return strconv.QuoteRune(r)
}

func (p *parser) parse() ([]Pair, error) {
	p.skipSpace()
	braced := false
	if p.i < len(p.s) && p.s[p.i] == '{' {
		braced = true
		p.i++
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return nil, p.end()
		}
	}
	if !braced && p.i == len(p.s) {
		return nil, nil
	}
	var pairs []Pair
	for {
		p.skipSpace()
		keyOff := p.i
		if p.i == len(p.s) || p.s[p.i] == ',' || p.s[p.i] == '}' || p.s[p.i] == ':' {
			what := "expected key"
			if len(pairs) > 0 {
				what = "expected key after ','"
			}
			return nil, p.errf(p.i, what+", found "+p.describe(p.i))
		}
		key, err := p.token("key")
		if err != nil {
			return nil, err
		}
		if key == "" {
			return nil, p.errf(keyOff, "empty key")
		}
		if key[len(key)-1] == '$' {
			return nil, p.errf(keyOff, "key "+strconv.Quote(key)+" ends in '$' (reserved for metadata)")
		}
		for _, pr := range pairs {
			if pr.Key == key {
				return nil, p.errf(keyOff, "duplicate key "+strconv.Quote(key))
			}
		}
		p.skipSpace()
		if p.i == len(p.s) || p.s[p.i] == ',' || p.s[p.i] == '}' {
			return nil, p.errf(p.i, "missing value for "+strconv.Quote(key)+" (expected ':')")
		}
		if p.s[p.i] != ':' {
			return nil, p.errf(p.i, "expected ':' after key "+strconv.Quote(key)+", found "+p.describe(p.i))
		}
		p.i++
		p.skipSpace()
		valOff := p.i
		if p.i == len(p.s) || p.s[p.i] == ',' || p.s[p.i] == '}' {
			return nil, p.errf(p.i, "missing value for "+strconv.Quote(key))
		}
		if p.s[p.i] == ':' {
			return nil, p.errf(p.i, "unexpected ':' (quote values that hold ':')")
		}
		quoted := p.s[p.i] == '"' || p.s[p.i] == '\''
		val, err := p.token("value")
		if err != nil {
			return nil, err
		}
		if !quoted {
			switch {
			case val == "null":
				return nil, p.errf(valOff, "null value for "+strconv.Quote(key)+" (patterns cannot hold null)")
			case isJSONNumber(val):
				var buf [32]byte
				val = string(appendJSONNumber(buf[:0], val))
			}
		}
		pairs = append(pairs, Pair{Key: key, Value: val})
		p.skipSpace()
		if p.i == len(p.s) {
			if braced {
				return nil, p.errf(p.i, "expected ',' or '}', found end of input")
			}
			return pairs, nil
		}
		switch c := p.s[p.i]; {
		case c == ',':
			p.i++
		case c == '}' && braced:
			p.i++
			return pairs, p.end()
		case c == ':':
			return nil, p.errf(p.i, "unexpected ':' (quote values that hold ':')")
		default:
			want := "expected ',' or end of input"
			if braced {
				want = "expected ',' or '}'"
			}
			return nil, p.errf(p.i, want+", found "+p.describe(p.i))
		}
	}
}

// end checks that nothing but space follows a closing brace.
func (p *parser) end() error {
	p.skipSpace()
	if p.i < len(p.s) {
		return p.errf(p.i, "unexpected "+p.describe(p.i)+" after '}'")
	}
	return nil
}

// token reads a bare word or a quoted string at p.i.
func (p *parser) token(what string) (string, error) {
	start := p.i
	c := p.s[p.i]
	if c == '"' || c == '\'' {
		return p.quoted(c)
	}
	for p.i < len(p.s) && !isDelim(p.s[p.i]) {
		p.i++
	}
	if p.i == start {
		return "", p.errf(start, "expected "+what+", found "+p.describe(start))
	}
	return p.s[start:p.i], nil
}

// quoted reads a string in quotes q with JSON escapes (and \').
func (p *parser) quoted(q byte) (string, error) {
	open := p.i
	p.i++
	// Fast path: no escapes.
	for j := p.i; j < len(p.s); j++ {
		c := p.s[j]
		if c == q {
			s := p.s[p.i:j]
			p.i = j + 1
			return s, nil
		}
		if c == '\\' || c < ' ' || c == 0x7f {
			break
		}
	}
	var b []byte
	for {
		if p.i >= len(p.s) {
			return "", p.errf(open, "unterminated string")
		}
		c := p.s[p.i]
		switch {
		case c == q:
			p.i++
			return string(b), nil
		case c < ' ' || c == 0x7f:
			return "", p.errf(p.i, "control character in string (use an escape)")
		case c != '\\':
			b = append(b, c)
			p.i++
			continue
		}
		esc := p.i
		if p.i+1 >= len(p.s) {
			return "", p.errf(open, "unterminated string")
		}
		e := p.s[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/', '\'':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.errf(esc, "invalid \\u escape (expected 4 hex digits)")
			}
			if utf16.IsSurrogate(r) {
				// A high surrogate followed by a low one is one character;
				// anything else becomes U+FFFD, as encoding/json does.
				r2 := unicode.ReplacementChar
				if p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					if lo, ok := p.hex4(); ok {
						if d := utf16.DecodeRune(r, lo); d != unicode.ReplacementChar {
							r2 = d
						} else {
							p.i = save
						}
					} else {
						p.i = save
					}
				}
				r = r2
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", p.errf(esc, "invalid escape "+strconv.Quote(p.s[esc:p.i]))
		}
	}
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	var r rune
	for j := 0; j < 4; j++ {
		c := p.s[p.i+j]
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

// isJSONNumber reports whether s is a number in JSON syntax.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i == len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i == len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	return i == len(s)
}

// needsQuote reports whether a key or value must be quoted so that Parse
// reads it back unchanged.
func needsQuote(s string, isValue bool) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if isDelim(c) || c == '\\' {
				return true
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsPrint(r) {
			return true
		}
		i += n
	}
	if isValue {
		if s == "null" {
			return true
		}
		if isJSONNumber(s) {
			var buf [32]byte
			return string(appendJSONNumber(buf[:0], s)) != s
		}
	}
	return false
}

// appendToken appends a key or value, quoted when needed.
func appendToken(b []byte, s string, isValue bool) []byte {
	if !needsQuote(s, isValue) {
		return append(b, s...)
	}
	return appendQuoted(b, s)
}

const hexDigits = "0123456789abcdef"

// appendQuoted appends s in double quotes with JSON escapes; characters that
// are not printable are written as \u escapes.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < ' ' || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if unicode.IsPrint(r) {
			b = utf8.AppendRune(b, r)
			continue
		}
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			b = appendU(b, r1)
			b = appendU(b, r2)
		} else {
			b = appendU(b, r)
		}
	}
	return append(b, '"')
}

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}
