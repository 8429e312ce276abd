package testenv_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/patbus/patbus/internal/testenv"
)

// outcome records how a helper ended a test: through Skip, through Fatal,
// or not at all.
type outcome struct {
	skipped, failed bool
	msg             string
}

// recorder is a testing.TB whose Skip and Fatal families record the
// outcome and end the calling goroutine, as the real ones do, without
// ending the test that uses it. Everything else goes to the real test.
type recorder struct {
	testing.TB
	out *outcome
}

func (r recorder) Helper() {}
func (r recorder) Skipf(format string, args ...any) {
	r.out.skipped, r.out.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r recorder) Skip(args ...any) { r.Skipf("%s", fmt.Sprint(args...)) }
func (r recorder) SkipNow()         { r.Skipf("SkipNow") }
func (r recorder) Fatalf(format string, args ...any) {
	r.out.failed, r.out.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }
func (r recorder) FailNow()          { r.Fatalf("FailNow") }
func (r recorder) Errorf(format string, args ...any) {
	r.out.failed, r.out.msg = true, fmt.Sprintf(format, args...)
}
func (r recorder) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }

// run calls fn with a recorder on its own goroutine and returns what fn
// returned (if it returned) and how it ended.
func run[T any](t *testing.T, fn func(testing.TB) T) (T, outcome) {
	t.Helper()
	var out outcome
	var got T
	done := make(chan struct{})
	go func() {
		defer close(done)
		got = fn(recorder{TB: t, out: &out})
	}()
	<-done
	return got, out
}

func TestAddressHelpers(t *testing.T) {
	helpers := []struct {
		env string
		fn  func(testing.TB) string
	}{
		{"PATBUS_AMQP_URL", testenv.AMQPURL},
		{"CONSUL_HTTP_ADDR", testenv.ConsulAddr},
		{"PATBUS_REDIS_ADDR", testenv.RedisAddr},
		{"MONGODB_URI", testenv.MongoURI},
	}
	cases := []struct {
		name          string
		value         string
		ci, require   string
		skip, fail    bool
		wantReturnVal bool
	}{
		{name: "set", value: "x://127.0.0.1:1", wantReturnVal: true},
		{name: "set in CI", value: "x://127.0.0.1:1", ci: "true", wantReturnVal: true},
		{name: "unset outside CI", skip: true},
		{name: "unset with CI", ci: "true", fail: true},
		{name: "unset with PATBUS_REQUIRE_SERVICES", require: "1", fail: true},
	}
	for _, h := range helpers {
		for _, c := range cases {
			t.Run(h.env+"/"+c.name, func(t *testing.T) {
				t.Setenv(h.env, c.value)
				t.Setenv("CI", c.ci)
				t.Setenv("PATBUS_REQUIRE_SERVICES", c.require)
				if got := testenv.Required(); got != (c.ci != "" || c.require != "") {
					t.Errorf("Required() = %v", got)
				}
				got, out := run(t, h.fn)
				if out.skipped != c.skip || out.failed != c.fail {
					t.Fatalf("skipped %v, failed %v (%q); want skipped %v, failed %v", out.skipped, out.failed, out.msg, c.skip, c.fail)
				}
				if c.wantReturnVal && got != c.value {
					t.Errorf("returned %q, want %q", got, c.value)
				}
				if (c.skip || c.fail) && !strings.Contains(out.msg, h.env) {
					t.Errorf("message %q does not name %s", out.msg, h.env)
				}
			})
		}
	}
}
