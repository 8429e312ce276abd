package patterns

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // canonical String()
		len  int
	}{
		{"empty string", "", "", 0},
		{"only spaces", "  \t\n", "", 0},
		{"empty braces", "{}", "", 0},
		{"empty braces with spaces", " { } ", "", 0},
		{"two pairs sorted", "role:user,cmd:login", "cmd:login,role:user", 2},
		{"spaces around tokens", "  role : user ,\n cmd:\tlogin ", "cmd:login,role:user", 2},
		{"braces", "{role:user,cmd:login}", "cmd:login,role:user", 2},
		{"integer", "a:1", "a:1", 1},
		{"negative float", "a:-1.5", "a:-1.5", 1},
		{"float normalized", "a:1.0", "a:1", 1},
		{"exponent normalized", "a:1e2", "a:100", 1},
		{"big exponent", "a:1e21", "a:1e+21", 1},
		{"small exponent", "a:1E-7", "a:1e-7", 1},
		{"negative zero", "a:-0", "a:0", 1},
		{"out of range", "a:1e400", "a:Infinity", 1},
		{"leading zero is text", "a:01", "a:01", 1},
		{"booleans", "a:true,b:false", "a:true,b:false", 2},
		{"double quoted with comma and colon", `a:"x,y:z"`, `a:"x,y:z"`, 1},
		{"single quoted", `a:'it\'s'`, `a:"it's"`, 1},
		{"quoted number stays text", `a:"1.0"`, `a:"1.0"`, 1},
		{"quoted one equals number one", `a:"1"`, `a:1`, 1},
		{"quoted null", `a:"null"`, `a:"null"`, 1},
		{"quoted empty", `a:""`, `a:""`, 1},
		{"escapes", `a:"x\n\t\"\\\/\u00e9"`, `a:"x\n\t\"\\/é"`, 1},
		{"surrogate pair", `a:"\ud83d\ude00"`, `a:😀`, 1},
		{"lone surrogate", `a:"\ud83d"`, "a:\uFFFD", 1},
		{"quoted key", `"a b":1`, `"a b":1`, 1},
		{"glob", "cmd:log*,role:?ser", "cmd:log*,role:?ser", 2},
		{"unicode bare word", "a:héllo", "a:héllo", 1},
		{"dots and dashes", "a:x.y-z_1", "a:x.y-z_1", 1},
		{"dollar inside key", "a$b:1", "a$b:1", 1},
		{"numeric key", "1:2", "1:2", 1},
		{"keys in byte order", "b:1,_:1,B:1,a:1", "B:1,_:1,a:1,b:1", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got := p.String(); got != tt.want {
				t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
			}
			if p.Len() != tt.len {
				t.Errorf("Len = %d, want %d", p.Len(), tt.len)
			}
			q, err := Parse(p.String())
			if err != nil || !q.Equal(p) {
				t.Errorf("round trip of %q: %v, %v", p.String(), q, err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		offset int
		msg    string
	}{
		{"missing value at end", "role:user,cmd", 13, `missing value for "cmd" (expected ':')`},
		{"missing value before comma", "cmd,role:user", 3, `missing value for "cmd" (expected ':')`},
		{"missing value after colon", "role:", 5, `missing value for "role"`},
		{"missing value before comma after colon", "a: ,b:1", 3, `missing value for "a"`},
		{"missing key", ":x", 0, `expected key, found ':'`},
		{"leading comma", ",a:1", 0, `expected key, found ','`},
		{"trailing comma", "a:1,", 4, `expected key after ',', found end of input`},
		{"double comma", "a:1,,b:2", 4, `expected key after ',', found ','`},
		{"space inside key", "a b:1", 2, `expected ':' after key "a", found 'b'`},
		{"space inside value", "a:1 2", 4, `expected ',' or end of input, found '2'`},
		{"colon in bare value", "a:b:c", 3, `unexpected ':' (quote values that hold ':')`},
		{"colon as value", "a::", 2, `unexpected ':' (quote values that hold ':')`},
		{"duplicate key", "a:1,b:2,a:3", 8, `duplicate key "a"`},
		{"dollar key", "a:1,tx$:2", 4, `key "tx$" ends in '$' (reserved for metadata)`},
		{"empty quoted key", `"":1`, 0, `empty key`},
		{"null value", "a:null", 2, `null value for "a" (patterns cannot hold null)`},
		{"unterminated string", `a:"xy`, 2, `unterminated string`},
		{"unterminated escape", `a:"x\`, 2, `unterminated string`},
		{"bad escape", `a:"x\q"`, 4, `invalid escape "\\q"`},
		{"bad unicode escape", `a:"\u12g4"`, 3, `invalid \u escape (expected 4 hex digits)`},
		{"control character in string", "a:\"x\x01\"", 4, `control character in string (use an escape)`},
		{"control character bare", "a:x\x01", 3, `expected ',' or end of input, found '\x01'`},
		{"missing closing brace", "{a:1", 4, `expected ',' or '}', found end of input`},
		{"missing closing brace after comma", "{a:1,", 5, `expected key after ',', found end of input`},
		{"unbalanced closing brace", "a:1}", 3, `expected ',' or end of input, found '}'`},
		{"text after brace", "{a:1} x", 6, `unexpected 'x' after '}'`},
		{"text after empty braces", "{}x", 2, `unexpected 'x' after '}'`},
		{"nested object", "a:{b:1}", 2, `expected value, found '{'`},
		{"array", "a:[1]", 2, `expected value, found '['`},
		{"invalid utf8", "a:\xff", 2, `invalid UTF-8`},
		{"brace only", "{", 1, `expected key, found end of input`},
		{"quote in bare value", `a:x"y"`, 3, `expected ',' or end of input, found '"'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded", tt.in)
			}
			if !errors.Is(err, ErrInvalidPattern) {
				t.Errorf("error %v does not wrap ErrInvalidPattern", err)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SyntaxError", err)
			}
			if se.Offset != tt.offset || se.Msg != tt.msg {
				t.Errorf("Parse(%q) error = %q at %d, want %q at %d", tt.in, se.Msg, se.Offset, tt.msg, tt.offset)
			}
		})
	}
	// The message as printed.
	_, err := Parse("role:user,cmd")
	if got, want := err.Error(), `patterns: invalid pattern: missing value for "cmd" (expected ':') at offset 13`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestStringQuoting(t *testing.T) {
	tests := []struct {
		name string
		key  string
		val  string
		want string
	}{
		{"plain", "a", "x", "a:x"},
		{"empty value", "a", "", `a:""`},
		{"space", "a", "x y", `a:"x y"`},
		{"leading space", "a", " x", `a:" x"`},
		{"comma", "a", "x,y", `a:"x,y"`},
		{"colon", "a", "x:y", `a:"x:y"`},
		{"braces", "a", "{x}", `a:"{x}"`},
		{"brackets", "a", "[x]", `a:"[x]"`},
		{"double quote", "a", `x"y`, `a:"x\"y"`},
		{"single quote", "a", `x'y`, `a:"x'y"`},
		{"backslash", "a", `x\y`, `a:"x\\y"`},
		{"newline", "a", "x\ny", `a:"x\ny"`},
		{"control", "a", "x\x01", `a:"x\u0001"`},
		{"delete", "a", "x\x7f", `a:"x\u007f"`},
		{"non-breaking space", "a", "x\u00a0", `a:"x\u00a0"`},
		{"null text", "a", "null", `a:"null"`},
		{"true text", "a", "true", `a:true`},
		{"number text normalized", "a", "1", `a:1`},
		{"number text not normalized", "a", "1.50", `a:"1.50"`},
		{"exponent text", "a", "1e5", `a:"1e5"`},
		{"js exponent form", "a", "1e+21", `a:1e+21`},
		{"key with space", "a b", "1", `"a b":1`},
		{"key with colon", "a:b", "1", `"a:b":1`},
		{"numeric key kept", "01", "1", `01:1`},
		{"glob", "a", "x*", `a:x*`},
		{"emoji", "a", "😀", `a:😀`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := FromPairs(Pair{tt.key, tt.val})
			if err != nil {
				t.Fatal(err)
			}
			if got := p.String(); got != tt.want {
				t.Errorf("String() = %s, want %s", got, tt.want)
			}
			q, err := Parse(p.String())
			if err != nil || !q.Equal(p) {
				t.Errorf("Parse(%s) = %v, %v; want %v", p.String(), q.Pairs(), err, p.Pairs())
			}
		})
	}
}
