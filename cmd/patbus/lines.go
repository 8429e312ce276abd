package main

import (
	"bufio"
	"errors"
	"io"
	"sync/atomic"
)

// lineBatch is a run of input lines, each with its line number. The lines
// share one buffer of their own (the publisher must keep a body until the
// broker confirmed it, which the scanner's buffer does not allow).
type lineBatch struct {
	lines [][]byte
	nums  []int
	err   error // set on the last batch when reading failed
}

// batchLines is how many lines a batch holds at most.
const batchLines = 256

// readLines reads r line by line on a goroutine of its own and sends the
// non-blank lines in batches; it closes the channel at the end of input
// or after an error (the last batch carries it). read counts the bytes
// consumed, for a progress bar. Stopping early is done by no longer
// receiving: the goroutine then blocks on its send or its read until the
// process ends, which is what a command line wants (it must not wait for a
// terminal or a pipe that has nothing more to say).
func readLines(r io.Reader, read *atomic.Int64) <-chan lineBatch {
	ch := make(chan lineBatch, 4)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), maxInput+1)
		n := 0
		var b lineBatch
		var arena []byte
		for sc.Scan() {
			n++
			tok := sc.Bytes()
			read.Add(int64(len(tok)) + 1)
			if isBlank(tok) {
				continue
			}
			if len(arena)+len(tok) > cap(arena) {
				arena = make([]byte, 0, max(256<<10, len(tok)))
			}
			start := len(arena)
			arena = append(arena, tok...)
			b.lines = append(b.lines, arena[start:len(arena):len(arena)])
			b.nums = append(b.nums, n)
			if len(b.lines) == batchLines {
				ch <- b
				b = lineBatch{}
			}
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				b.err = inputErrorf("stdin line %d: longer than %d bytes", n+1, maxInput)
			} else {
				b.err = err
			}
		}
		if len(b.lines) > 0 || b.err != nil {
			ch <- b
		}
	}()
	return ch
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
