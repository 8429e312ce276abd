package services

import (
	"fmt"
	"sync"

	"github.com/Masterminds/semver/v3"
)

// version is a parsed semantic version (https://semver.org, 2.0.0):
// MAJOR.MINOR.PATCH with an optional -prerelease and +build, compared by
// semver precedence (github.com/Masterminds/semver/v3).
type version struct{ v *semver.Version }

// parseSemver parses s strictly: a leading "v", a missing part or a
// leading zero is an error, so that the version in queue names and
// catalog entries is exactly what the service declared.
func parseSemver(s string) (version, error) {
	v, err := semver.StrictNewVersion(s)
	if err != nil {
		return version{}, fmt.Errorf("version %q: %w", s, err)
	}
	return version{v}, nil
}

// compare returns -1, 0 or +1 by semver precedence; build metadata does
// not count. The zero version sorts before every other.
func (a version) compare(b version) int {
	switch {
	case a.v == nil && b.v == nil:
		return 0
	case a.v == nil:
		return -1
	case b.v == nil:
		return 1
	}
	return a.v.Compare(b.v)
}

// prerelease reports whether a is a prerelease (1.2.0-rc.1).
func (a version) prerelease() bool { return a.v != nil && a.v.Prerelease() != "" }

// versionPin is a message's $$version: an exact version, or a range in
// the usual syntax ("^1.2", "~1.2.3", ">=1.0.0 <2.0.0", "1.x"), which
// matches prereleases only when it names one itself.
type versionPin struct {
	raw   string
	exact bool                // raw is a version: only that one matches
	c     *semver.Constraints // otherwise the range
}

// allows reports whether the service version v (as announced, vs) may
// serve an act pinned to p.
func (p *versionPin) allows(vs string, v version) bool {
	if p == nil || vs == p.raw {
		return true
	}
	if p.exact || v.v == nil {
		return false
	}
	return p.c.Check(v.v)
}

// pinCache remembers parsed $$version pins, up to maxCachedPatterns of
// them, so that an act pinned to a range does not parse it each time.
type pinCache struct {
	mu sync.RWMutex
	m  map[string]*versionPin
}

// get parses raw as a version or a range; "" gives nil (no pin). A pin
// that is neither fails with an error wrapping ErrInvalidInput.
func (c *pinCache) get(raw string) (*versionPin, error) {
	if raw == "" {
		return nil, nil
	}
	c.mu.RLock()
	p, ok := c.m[raw]
	c.mu.RUnlock()
	if ok {
		return p, nil
	}
	p = &versionPin{raw: raw}
	if _, err := semver.StrictNewVersion(raw); err == nil {
		p.exact = true
	} else {
		cs, err := semver.NewConstraint(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: $$version %q is neither a version nor a range: %w", ErrInvalidInput, raw, err)
		}
		p.c = cs
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*versionPin{}
	}
	if len(c.m) < maxCachedPatterns {
		c.m[raw] = p
	}
	c.mu.Unlock()
	return p, nil
}
