package gateway

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// joinPath joins path parts as Node's path.join('/', parts...) does, which
// is how seneca-web builds its paths: empty parts are skipped, the result
// is cleaned ("//" becomes "/", "." and ".." are resolved) and a trailing
// slash is kept.
func joinPath(parts ...string) string {
	var b strings.Builder
	b.WriteByte('/')
	for _, p := range parts {
		if p == "" {
			continue
		}
		b.WriteByte('/')
		b.WriteString(p)
	}
	raw := b.String()
	out := path.Clean(raw)
	if strings.HasSuffix(raw, "/") && out != "/" {
		out += "/"
	}
	return out
}

// muxPath turns a path in Express's syntax into the path of an
// http.ServeMux pattern and the names of its parameters: a segment ":id"
// becomes "{id}", and a trailing slash "{$}" (the path matches as written,
// not as a subtree). The rest of Express's path syntax (a parameter inside
// a segment, optional and repeated parameters, "*", regular expressions)
// is refused.
func muxPath(p string) (string, []string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", nil, errors.New("a path starts with /")
	}
	if p == "/" {
		return "/{$}", nil, nil
	}
	var b strings.Builder
	var params []string
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		b.WriteByte('/')
		switch {
		case s == "" && i == len(segs)-1:
			b.WriteString("{$}")
		case s == "":
			return "", nil, errors.New("empty segment")
		case s[0] == ':':
			name := s[1:]
			if !isParamName(name) {
				return "", nil, fmt.Errorf("parameter %q: a name is a letter or _ then letters, digits and _ (Express's optional, repeated and pattern parameters are not supported)", s)
			}
			if slices.Contains(params, name) {
				return "", nil, fmt.Errorf("parameter %q appears twice", s)
			}
			params = append(params, name)
			b.WriteString("{" + name + "}")
		default:
			if j := strings.IndexFunc(s, badPathRune); j >= 0 {
				return "", nil, fmt.Errorf("segment %q: %q is not supported in a path (a parameter takes a whole segment: /:id)", s, s[j:j+1])
			}
			b.WriteString(s)
		}
	}
	return b.String(), params, nil
}

func isParamName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// badPathRune reports the characters a literal segment may not hold: the
// syntax of Express's paths and of http.ServeMux patterns, white space,
// control characters and the query and fragment delimiters.
func badPathRune(r rune) bool {
	return strings.ContainsRune("{}*?()+:#", r) || r <= ' ' || r == 0x7f
}
