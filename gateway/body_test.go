package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/internal/testenv"
)

func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

// Bodies the gateway refuses, and the edge cases it takes.
func TestBadInput(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		e := newEnv(t, b)
		const echo = "/test/echo/1/2"
		ct := func(v string) []string { return []string{"Content-Type", v} }
		for _, c := range []struct {
			name   string
			path   string
			body   string
			header []string
			status int
			code   string // the error code, or "" for a 200
		}{
			{"text/plain", echo, `{}`, ct("text/plain"), 415, "unsupported_media_type"},
			{"a form", echo, `a=1`, ct("application/x-www-form-urlencoded"), 415, "unsupported_media_type"},
			{"no Content-Type", echo, `{}`, ct(""), 415, "unsupported_media_type"},
			{"latin-1", echo, `{}`, ct("application/json; charset=latin1"), 415, "unsupported_media_type"},
			{"unparsable Content-Type", echo, `{}`, ct("application/json; ;"), 415, "unsupported_media_type"},
			{"charset utf-8", echo, `{}`, ct("application/json; charset=UTF-8"), 200, ""},
			{"a +json type", echo, `{}`, ct("application/merge-patch+json"), 200, ""},
			{"truncated", echo, `{"name":`, nil, 400, "invalid_input"},
			{"data after the value", echo, `{} x`, nil, 400, "invalid_input"},
			{"two values", echo, `{}{}`, nil, 400, "invalid_input"},
			{"not JSON", echo, `name=x`, nil, 400, "invalid_input"},
			{"invalid UTF-8", echo, "\"\xff\"", nil, 400, "invalid_input"},
			{"white space only", echo, " \n ", nil, 200, ""},
			{"a scalar", echo, `42`, nil, 200, ""},
			{"nested 64 deep", echo, nested(64), nil, 200, ""},
			{"nested 65 deep", echo, nested(65), nil, 400, "invalid_input"},
			{"nested 100000 deep", echo, nested(100000), nil, 400, "invalid_input"},
			{"unclosed nesting", echo, strings.Repeat("[", 100000), nil, 400, "invalid_input"},
			{"brackets in strings", echo, `{"a":"` + strings.Repeat("[", 100) + `\"{{{"}`, nil, 200, ""},
			{"bad query", "/test/echo/1/2?a=%zz", "", nil, 400, "invalid_input"},
			{"invalid UTF-8 in a path parameter", "/test/echo/%FF/2", "", nil, 400, "invalid_input"},
			{"invalid UTF-8 in a query value", "/test/echo/1/2?q=%FE", "", nil, 400, "invalid_input"},
			{"invalid UTF-8 in a query key", "/test/echo/1/2?%FE=1", "", nil, 400, "invalid_input"},
			{"UTF-8 in the path and query", "/test/echo/%E7%94%B2/2?q=%E4%B9%99", "", nil, 200, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := e.do(t, "POST", c.path, c.body, c.header...)
				if r.status != c.status {
					t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
				}
				if c.code == "" {
					return
				}
				if eb := r.errorBody(t); eb.Code != c.code || eb.Tx == "" || eb.Message == "" {
					t.Errorf("error body %+v, want code %q", eb, c.code)
				}
			})
		}
		// A chunked body of white space is a body: it must say it is JSON.
		for _, c := range []struct {
			ct     string
			status int
		}{{"text/plain", 415}, {"application/json", 200}} {
			t.Run("white space only, chunked, "+c.ct, func(t *testing.T) {
				req, err := http.NewRequest("POST", e.url+echo, io.NopCloser(strings.NewReader(" \n ")))
				if err != nil {
					t.Fatal(err)
				}
				req.ContentLength = -1
				req.Header.Set("Content-Type", c.ct)
				res, err := e.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				data, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != c.status {
					t.Fatalf("status %d, want %d: %s", res.StatusCode, c.status, data)
				}
			})
		}
	})
}

// countingReader yields n bytes of a JSON string and counts what is read.
type countingReader struct {
	n    int64
	read atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	done := r.read.Load()
	if done >= r.n {
		return 0, io.EOF
	}
	k := int64(len(p))
	if k > r.n-done {
		k = r.n - done
	}
	for i := range p[:k] {
		p[i] = 'a'
	}
	if done == 0 {
		p[0] = '"'
	}
	r.read.Add(k)
	return int(k), nil
}

// A body over the limit is answered 413 without being read whole.
func TestBodyLimit(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		e := newEnv(t, b)
		const limit = gateway.DefaultMaxBodyBytes
		const huge = 256 << 20
		expecting := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
		defer expecting.CloseIdleConnections()
		for _, c := range []struct {
			name     string
			size     int64
			declared bool  // Content-Length is sent (else the body is chunked)
			expect   bool  // the client sends Expect: 100-continue
			maxRead  int64 // the most the gateway may read of the body
		}{
			{"declared too large", huge, true, false, 0},
			{"chunked too large", huge, false, false, limit + 1},
			{"declared one byte over", limit + 1, true, false, 0},
			{"declared too large, 100-continue", huge, true, true, 0},
		} {
			t.Run(c.name, func(t *testing.T) {
				e.bodyRead.Store(0)
				body := &countingReader{n: c.size}
				req, err := http.NewRequest("POST", e.url+"/test/echo/1/2", io.NopCloser(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.ContentLength = -1
				if c.declared {
					req.ContentLength = c.size
				}
				client := e.client
				if c.expect {
					req.Header.Set("Expect", "100-continue")
					client = expecting
				}
				res, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				data, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 413 {
					t.Fatalf("status %d: %s", res.StatusCode, data)
				}
				var eb gateway.ErrorBody
				if err := json.Unmarshal(data, &eb); err != nil || eb.Code != "too_large" {
					t.Errorf("body %s", data)
				}
				// The client's count includes what the sockets' buffers
				// took; the gateway's is what it read.
				t.Logf("the client sent %d of %d bytes, the gateway read %d", body.read.Load(), c.size, e.bodyRead.Load())
				if got := e.bodyRead.Load(); got > c.maxRead {
					t.Errorf("the gateway read %d bytes of %d, want at most %d", got, c.size, c.maxRead)
				}
				if c.expect && body.read.Load() > 0 {
					t.Errorf("the client sent %d bytes after Expect: 100-continue, want none", body.read.Load())
				}
			})
		}
		t.Run("at the limit", func(t *testing.T) {
			body := `"` + strings.Repeat("a", limit-2) + `"`
			r := e.do(t, "POST", "/test/echo/1/2", body)
			if r.status != 200 {
				t.Fatalf("status %d: %.200s", r.status, r.body)
			}
			var got echoReply
			if err := json.Unmarshal(r.body, &got); err != nil || string(got.Args.Body) != body {
				t.Errorf("the body did not come back whole (%v, %d bytes)", err, len(got.Args.Body))
			}
		})
	})
}
