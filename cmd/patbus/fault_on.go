//go:build patbusfault

package main

import (
	"strconv"
	"strings"
)

// replayFault is a test hook, built only with the patbusfault tag:
// PATBUS_CLI_FAULT=replay-exit-after-journal:N makes the process exit at
// once (status 9, as if killed) once the N-th journal copy is confirmed and
// before its original is removed, the one moment an item is in two queues.
// Tests use it to check that the next replay duplicates nothing.
func replayFault(getenv func(string) string) int {
	v, ok := strings.CutPrefix(getenv("PATBUS_CLI_FAULT"), "replay-exit-after-journal:")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(v)
	return n
}
