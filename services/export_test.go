package services

import (
	"context"
	"os"
)

// RunWithSignals is Run listening to sigs instead of the process's
// signals, so that tests can signal it without racing its signal.Notify.
func RunWithSignals(ctx context.Context, sigs <-chan os.Signal, svcs ...*Service) error {
	return run(ctx, sigs, svcs)
}

// Resolve resolves msg as an act does, without acting: for the benchmark
// of the resolve cost.
func (s *Service) Resolve(msg map[string]any) bool {
	_, ok := s.resolve(s.snap.Load(), msg)
	return ok
}
