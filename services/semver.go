package services

import (
	"fmt"

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
