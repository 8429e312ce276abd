package bus

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// hasToken reports whether s holds pw other than inside a longer word, as
// a reader would spot it.
func hasToken(s, pw string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], pw)
		if j < 0 {
			return false
		}
		at := i + j
		before := at == 0 || !isWordByte(s[at-1]) || !isWordByte(pw[0])
		end := at + len(pw)
		after := end == len(s) || !isWordByte(s[end]) || !isWordByte(pw[len(pw)-1])
		if before && after {
			return true
		}
		i = at + 1
	}
}

// TestRedactPasswordsOfAnyLength: passwords of every length, short ones
// above all, are masked in the shown address and in any error text the
// broker logs or returns, in the forms they take there (the URL, the
// user:password pair, the bare password, percent-encoded or not), and
// text that merely contains the letters of a short password survives.
func TestRedactPasswordsOfAnyLength(t *testing.T) {
	for _, pw := range []string{"a", "pw", "abc", "p@s", "p/w", "s3cret-pw", "pass word"} {
		raw := "amqp://user:" + url.PathEscape(pw) + "@127.0.0.1:5672/vh"
		addrs, err := parseAddrs([]string{raw})
		if err != nil {
			t.Fatalf("%q: %v", pw, err)
		}
		r := &Rabbit{addrs: addrs}
		escaped := url.PathEscape(pw)
		for _, shown := range []string{addrs[0].shown, redactURL(raw)} {
			if hasToken(shown, pw) || (escaped != pw && hasToken(shown, escaped)) {
				t.Errorf("password %q shown in the address: %s", pw, shown)
			}
		}
		for _, e := range []error{
			errors.New("dial " + raw + ": connection refused"),
			fmt.Errorf("auth user:%s@127.0.0.1 refused", pw),
			fmt.Errorf("auth user:%s@127.0.0.1 refused", escaped),
			fmt.Errorf("password %q rejected", pw),
			fmt.Errorf("password '%s' rejected", pw),
			fmt.Errorf("password %s", pw),
		} {
			got := r.scrub(e)
			if hasToken(got, pw) || (escaped != pw && hasToken(got, escaped)) {
				t.Errorf("password %q survives in %q", pw, got)
			}
		}
		// Words that only contain the password's letters stay readable.
		if got := r.scrub(errors.New("connection reset by peer")); got != "connection reset by peer" {
			t.Errorf("password %q: %q became %q", pw, "connection reset by peer", got)
		}
	}
	// An address that does not parse keeps its password hidden as well.
	for _, raw := range []string{"amqp://u:a b@host/", "amqp://u:p#w@host:abc/", "amqp://u:x@[::1/"} {
		if got := redactURL(raw); strings.Contains(got, ":a b@") || strings.Contains(got, "p#w") || strings.Contains(got, ":x@") {
			t.Errorf("redactURL(%q) = %q", raw, got)
		}
	}
}

// TestRedact: the exported form masks every address of a list, those that
// do not parse included, and leaves text without passwords alone.
func TestRedact(t *testing.T) {
	addrs := "amqp://u:s3cret-pw@127.0.0.1:5672/vh, amqp://u:p%40s@127.0.0.2/vh,amqp://u:odd pw@[bad"
	if got := Redact(addrs, addrs); strings.Contains(got, "s3cret-pw") || strings.Contains(got, "p%40s") || strings.Contains(got, "odd pw") ||
		!strings.Contains(got, "u:xxxxx@127.0.0.1:5672/vh") || !strings.Contains(got, "127.0.0.2/vh") {
		t.Errorf("Redact(addrs, addrs) = %q", got)
	}
	msg := `dial: user "u" password "p@s" refused; s3cret-pw again`
	if got := Redact(addrs, msg); strings.Contains(got, "p@s") || strings.Contains(got, "s3cret-pw") {
		t.Errorf("Redact(addrs, %q) = %q", msg, got)
	}
	if got := Redact(addrs, "no secrets here"); got != "no secrets here" {
		t.Errorf("text without passwords changed: %q", got)
	}
	if got := Redact("", "amqp://u:pw@h"); got != "amqp://u:pw@h" {
		t.Errorf("no addresses changed the text: %q", got)
	}
}
