package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"
)

// ANSI colours, used only when stdout is a terminal and colour is not
// turned off (--no-color, NO_COLOR, TERM=dumb).
const (
	colReset  = "\x1b[0m"
	colDim    = "\x1b[2m"
	colRed    = "\x1b[31m"
	colGreen  = "\x1b[32m"
	colYellow = "\x1b[33m"
	colBlue   = "\x1b[34m"
	colCyan   = "\x1b[36m"
	colBold   = "\x1b[1m"
)

// paint wraps s in the colour when colour is on.
func (a *app) paint(color, s string) string {
	if !a.colorOK || s == "" {
		return s
	}
	return color + s + colReset
}

// writeJSONValue prints a JSON value: indented on a terminal, compact
// otherwise, followed by a newline.
func (a *app) writeJSONValue(w io.Writer, data []byte) {
	var buf bytes.Buffer
	var err error
	if a.outTTY && !a.opts.json {
		err = json.Indent(&buf, data, "", "  ")
	} else {
		err = json.Compact(&buf, data)
	}
	if err != nil {
		buf.Reset()
		buf.Write(data)
	}
	buf.WriteByte('\n')
	_, _ = w.Write(buf.Bytes())
}

// printJSON prints v as one line of JSON.
func (a *app) printJSON(v any) {
	data, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(a.errw, "patbus: cannot encode output: %v\n", err)
		return
	}
	data = append(data, '\n')
	_, _ = a.out.Write(data)
}

// preview returns body compacted to one line and cut to n runes.
func preview(body []byte, n int) string {
	var buf bytes.Buffer
	s := string(body)
	if json.Compact(&buf, body) == nil {
		s = buf.String()
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// rawOrString returns body as a json.RawMessage when it is valid JSON,
// else as a string, for JSON output.
func rawOrString(body []byte) any {
	if json.Valid(body) {
		return json.RawMessage(body)
	}
	return string(body)
}
