package services

import (
	"fmt"
	"strconv"
	"strings"
)

// semver is a parsed semantic version (https://semver.org, 2.0.0):
// MAJOR.MINOR.PATCH with an optional -prerelease and +build.
type semver struct {
	major, minor, patch uint64
	pre                 []string
}

// parseSemver parses v; a leading "v" is not accepted, so that the version
// in queue names and catalog entries is exactly what the service declared.
func parseSemver(v string) (semver, error) {
	var s semver
	if v == "" {
		return s, fmt.Errorf("empty version")
	}
	if i := strings.IndexByte(v, '+'); i >= 0 {
		if !validIdents(v[i+1:], false) {
			return s, fmt.Errorf("invalid build metadata in %q", v)
		}
		v = v[:i]
	}
	if i := strings.IndexByte(v, '-'); i >= 0 {
		pre := v[i+1:]
		if !validIdents(pre, true) {
			return s, fmt.Errorf("invalid pre-release in %q", v)
		}
		s.pre = strings.Split(pre, ".")
		v = v[:i]
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return s, fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", v)
	}
	nums := [3]*uint64{&s.major, &s.minor, &s.patch}
	for i, p := range parts {
		if !numeric(p) || (len(p) > 1 && p[0] == '0') {
			return s, fmt.Errorf("invalid number %q in version", p)
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return s, fmt.Errorf("invalid number %q in version", p)
		}
		*nums[i] = n
	}
	return s, nil
}

func numeric(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validIdents checks dot-separated identifiers of [0-9A-Za-z-]; for a
// pre-release, numeric identifiers may not have leading zeros.
func validIdents(s string, pre bool) bool {
	if s == "" {
		return false
	}
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return false
		}
		for i := 0; i < len(id); i++ {
			c := id[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
				return false
			}
		}
		if pre && numeric(id) && len(id) > 1 && id[0] == '0' {
			return false
		}
	}
	return true
}

// compare returns -1, 0 or +1 by semver precedence.
func (a semver) compare(b semver) int {
	for _, d := range [3][2]uint64{{a.major, b.major}, {a.minor, b.minor}, {a.patch, b.patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(a.pre) == 0 && len(b.pre) == 0:
		return 0
	case len(a.pre) == 0:
		return 1
	case len(b.pre) == 0:
		return -1
	}
	for i := 0; i < len(a.pre) && i < len(b.pre); i++ {
		x, y := a.pre[i], b.pre[i]
		if x == y {
			continue
		}
		xn, yn := numeric(x), numeric(y)
		switch {
		case xn && yn:
			if len(x) != len(y) {
				if len(x) < len(y) {
					return -1
				}
				return 1
			}
			if x < y {
				return -1
			}
			return 1
		case xn:
			return -1
		case yn:
			return 1
		case x < y:
			return -1
		default:
			return 1
		}
	}
	switch {
	case len(a.pre) < len(b.pre):
		return -1
	case len(a.pre) > len(b.pre):
		return 1
	}
	return 0
}
