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
