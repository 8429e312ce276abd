package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/patbus/patbus"
)

// requestError is a request the gateway refuses before acting: its status,
// code and message.
type requestError struct {
	status  int
	code    string
	message string
}

func badRequest(format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, code: patbus.CodeInvalidInput, message: fmt.Sprintf(format, args...)}
}

// emptyObject is the body of a request without one, as seneca-web gives
// it: {}.
var emptyObject = []byte("{}")

// readBody reads and checks a request's JSON body: at most max bytes
// (beyond that it stops reading and refuses the request, 413), of the
// media type application/json or a "+json" type (415), well-formed (400)
// UTF-8 and nested at most depth deep (400). A request without a body has the
// body {}. The bytes are returned as they arrived: numbers keep their
// digits.
func readBody(w http.ResponseWriter, r *http.Request, max int64, depth int) ([]byte, *requestError) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return emptyObject, nil
	}
	if r.ContentLength > 0 {
		if rerr := checkMediaType(r.Header.Get("Content-Type")); rerr != nil {
			return nil, rerr
		}
		if r.ContentLength > max {
			return nil, tooLarge(max)
		}
	}
	// The length is known and within max, or unknown (chunked):
	// MaxBytesReader stops after max bytes and makes the server close the
	// connection rather than read the rest.
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		// Trust the declared length only so far: a client that declares
		// a large body and sends little must not make it allocated.
		buf.Grow(int(min(r.ContentLength, maxPreallocate)))
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, max)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(max)
		}
		return nil, badRequest("the body could not be read")
	}
	body := buf.Bytes()
	if r.ContentLength < 0 && len(body) > 0 {
		// A chunked body is checked as a declared one is: any byte sent
		// makes it a body, and it must say it is JSON.
		if rerr := checkMediaType(r.Header.Get("Content-Type")); rerr != nil {
			return nil, rerr
		}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return emptyObject, nil
	}
	if d := jsonDepth(body, depth); d > depth {
		return nil, badRequest("the JSON body is nested more than %d deep", depth)
	}
	if !json.Valid(body) {
		return nil, badRequest("the body is not valid JSON")
	}
	if !utf8.Valid(body) {
		// encoding/json takes invalid UTF-8 and makes U+FFFD of it.
		return nil, badRequest("the body is not valid UTF-8")
	}
	return body, nil
}

// maxPreallocate bounds the buffer allocated for a body before it is read.
const maxPreallocate = 64 << 10

func tooLarge(max int64) *requestError {
	return &requestError{
		status:  http.StatusRequestEntityTooLarge,
		code:    patbus.CodeTooLarge,
		message: fmt.Sprintf("the body exceeds %d bytes", max),
	}
}

// checkMediaType accepts application/json and the "+json" types
// (application/problem+json, ...), with no charset or charset utf-8.
func checkMediaType(ct string) *requestError {
	unsupported := func(msg string) *requestError {
		return &requestError{status: http.StatusUnsupportedMediaType, code: CodeUnsupportedMediaType, message: msg}
	}
	if ct == "" {
		return unsupported("a body needs Content-Type: application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return unsupported("the Content-Type does not parse")
	}
	if mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return unsupported("the body must be application/json, not " + mt)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return unsupported("a JSON body is UTF-8, not " + cs)
	}
	return nil
}

// jsonDepth returns the deepest nesting of arrays and objects in b, or
// stops and returns limit+1 as soon as it passes limit. It looks only at
// brackets outside strings; json.Valid checks the rest.
func jsonDepth(b []byte, limit int) int {
	depth, deepest := 0, 0
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > deepest {
				deepest = depth
				if deepest > limit {
					return deepest
				}
			}
		case ']', '}':
			depth--
		}
	}
	return deepest
}
