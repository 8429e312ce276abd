package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/patbus/patbus/patterns"
)

// maxInput bounds one JSON document or line read from stdin: the largest
// body the broker takes by default.
const maxInput = 8 << 20

// parsePattern parses a pattern given on the command line; a syntax error
// names the offset and shows where it is.
func parsePattern(what, s string) (patterns.Pattern, error) {
	p, err := patterns.Parse(s)
	if err == nil {
		return p, nil
	}
	var se *patterns.SyntaxError
	if errors.As(err, &se) {
		return p, inputErrorf("malformed %s at offset %d: %s\n  %s\n  %s^", what, se.Offset, se.Msg, s, strings.Repeat(" ", min(se.Offset, len(s))))
	}
	return p, inputErrorf("malformed %s %q: %v", what, s, err)
}

// jsonError describes a JSON syntax error in data by line and column.
func jsonError(source string, data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	off := -1
	switch {
	case errors.As(err, &se):
		off = int(se.Offset)
	case errors.As(err, &te):
		off = int(te.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		off = len(data)
	}
	if off < 0 {
		return inputErrorf("%s: malformed JSON: %v", source, err)
	}
	line, col := lineCol(data, off)
	return inputErrorf("%s: malformed JSON at line %d, column %d: %s", source, line, col, jsonReason(err))
}

// jsonReason is encoding/json's message without its "json: " prefix.
func jsonReason(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}

// lineCol turns a byte offset (encoding/json counts the bytes read,
// so the offending byte is the one before it) into a 1-based line and
// column.
func lineCol(data []byte, off int) (int, int) {
	if off > len(data) {
		off = len(data)
	}
	if off > 0 {
		off--
	}
	line := 1 + bytes.Count(data[:off], []byte{'\n'})
	col := off + 1
	if i := bytes.LastIndexByte(data[:off], '\n'); i >= 0 {
		col = off - i
	}
	return line, col
}

// checkJSON reports whether data is one valid JSON value, naming the line
// and column of the first problem; object requires a JSON object.
func checkJSON(source string, data []byte, object bool) error {
	if json.Valid(data) {
		if object {
			if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
				return inputErrorf("%s: not a JSON object", source)
			}
		}
		return nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	err := dec.Decode(&v)
	if err == nil {
		// One value followed by more.
		off := int(dec.InputOffset()) + 1
		rest := data[dec.InputOffset():]
		off += len(rest) - len(bytes.TrimLeft(rest, " \t\r\n"))
		line, col := lineCol(data, off)
		return inputErrorf("%s: malformed JSON at line %d, column %d: more than one value", source, line, col)
	}
	if errors.Is(err, io.EOF) {
		return inputErrorf("%s: no JSON value", source)
	}
	return jsonError(source, data, err)
}

// readInput reads the input of an act or an event: a JSON object given as
// an argument, "-" for a JSON document on stdin, or pairs written as a
// pattern ("user:asd,pass:123", which become {"user":"asd","pass":123}
// with the pattern's typing). Empty means no input.
func (a *app) readInput(arg string) ([]byte, error) {
	switch t := strings.TrimSpace(arg); {
	case t == "":
		return nil, nil
	case t == "-":
		data, err := io.ReadAll(io.LimitReader(a.in, maxInput+1))
		if err != nil {
			return nil, fmt.Errorf("reading stdin: %w", err)
		}
		if len(data) > maxInput {
			return nil, inputErrorf("stdin: input larger than %d bytes", maxInput)
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, nil
		}
		return data, checkJSON("stdin", data, true)
	case strings.HasPrefix(t, "{") || strings.HasPrefix(t, "["):
		data := []byte(arg)
		return data, checkJSON("input", data, true)
	default:
		return pairsJSON("input", t)
	}
}

// pairsJSON turns pairs written as a pattern into a JSON object, typed as
// Seneca's jsonic types them (patterns.Pair.JSON).
func pairsJSON(what, s string) ([]byte, error) {
	p, err := parsePattern(what, s)
	if err != nil {
		return nil, err
	}
	m := make(map[string]any, p.Len())
	for _, pr := range p.Pairs() {
		m[pr.Key] = pr.JSON()
	}
	return json.Marshal(m)
}
