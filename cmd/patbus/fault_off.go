//go:build !patbusfault

package main

// replayFault injects no fault: the hook exists only in builds with the
// patbusfault tag, which the command's tests use.
func replayFault(func(string) string) int { return 0 }
