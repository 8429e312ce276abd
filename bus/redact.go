package bus

import (
	"net/url"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Redact returns s with the passwords of the broker addresses in addrs
// (one or several, comma-separated, as Open takes them) hidden: each whole
// address becomes its form without the password, and every other
// occurrence of a password is masked as the Broker masks its own errors
// (scrubText). Redact(addrs, addrs) is the list of addresses fit to show.
// An address that does not parse is redacted as well as its text allows.
func Redact(addrs, s string) string {
	for _, a := range strings.Split(addrs, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if shown := redactURL(a); shown != a {
			s = strings.ReplaceAll(s, a, shown)
		}
		var decoded string
		if u, err := amqp.ParseURI(a); err == nil {
			decoded = u.Password
		} else if u, err := url.Parse(a); err == nil && u.User != nil {
			decoded, _ = u.User.Password()
		}
		for _, pw := range passwordForms(a, decoded) {
			s = maskPassword(s, pw)
		}
	}
	return s
}

// redactURL removes the password from a URL, even one that does not
// parse: url.URL.Redacted where it parses, else the text between "://"
// and the last "@" keeps only its user name.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	i := strings.Index(s, "://")
	if i < 0 {
		return "(unparseable address)"
	}
	rest := s[i+3:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	user := rest[:at]
	if c := strings.Index(user, ":"); c >= 0 {
		user = user[:c] + ":xxxxx"
	}
	return s[:i+3] + user + rest[at:]
}

// passwordForms returns the forms a password takes in text: decoded, and
// as written in the URL (percent-encoded) when that differs.
func passwordForms(raw, decoded string) []string {
	var out []string
	if decoded != "" {
		out = append(out, decoded)
	}
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				if w := rest[c+1 : at]; w != "" && w != decoded {
					out = append(out, w)
				}
			}
		}
	}
	return out
}

// maskPassword replaces pw in s with xxxxx: everywhere when it is long,
// only where it stands alone when it is short (see scrubText).
func maskPassword(s, pw string) string {
	if pw == "" {
		return s
	}
	if len(pw) >= 6 {
		return strings.ReplaceAll(s, pw, "xxxxx")
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], pw)
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		at, end := i+j, i+j+len(pw)
		alone := (at == 0 || !isWordByte(s[at-1]) || !isWordByte(pw[0])) &&
			(end == len(s) || !isWordByte(s[end]) || !isWordByte(pw[len(pw)-1]))
		b.WriteString(s[i:at])
		if alone {
			b.WriteString("xxxxx")
		} else {
			b.WriteString(pw)
		}
		i = end
	}
	return b.String()
}

// isWordByte reports whether b is an ASCII letter or digit, or part of a
// multi-byte character (taken as a letter).
func isWordByte(b byte) bool {
	return b >= 0x80 || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}
