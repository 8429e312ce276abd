package services

import "testing"

func TestSemverOrder(t *testing.T) {
	// Ascending precedence, from semver.org's examples.
	order := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.9.0", "1.10.0", "2.0.0"}
	for i := range order {
		for j := range order {
			a, err := parseSemver(order[i])
			if err != nil {
				t.Fatal(err)
			}
			b, _ := parseSemver(order[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.compare(b); got != want {
				t.Errorf("compare(%s, %s) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	if a, _ := parseSemver("1.0.0+build.1"); a.compare(mustSemver(t, "1.0.0")) != 0 {
		t.Error("build metadata must not count")
	}
	for _, bad := range []string{"", "1", "1.0", "1.0.0.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0-01", "1.0.0+", "1.0.0-a..b", "1.x.0", "1.0.0-é"} {
		if _, err := parseSemver(bad); err == nil {
			t.Errorf("parseSemver(%q) accepted", bad)
		}
	}
}

func mustSemver(t *testing.T, s string) version {
	t.Helper()
	v, err := parseSemver(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
