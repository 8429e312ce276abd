package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress draws a progress bar on stderr while lines are published, only
// when stderr is a terminal and --json is off. With stdin redirected from
// a file the bar measures the bytes read against its size, which gives an
// ETA; from a pipe it counts the confirmed messages with their rate.
type progress struct {
	bar  *progressbar.ProgressBar
	stop chan struct{}
	wg   sync.WaitGroup
}

func (a *app) newProgress(ctx context.Context, noun string, size int64, read, confirmed *atomic.Int64) *progress {
	if !a.errTTY || a.opts.json {
		return nil
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(a.errw),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionEnableColorCodes(a.colorOK),
	}
	var bar *progressbar.ProgressBar
	if size > 0 {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionSetPredictTime(true))
		bar = progressbar.NewOptions64(size, opts...)
	} else {
		opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionShowIts(),
			progressbar.OptionSetItsString(noun+"s"), progressbar.OptionSpinnerType(14))
		bar = progressbar.NewOptions64(-1, opts...)
	}
	p := &progress{bar: bar, stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		start := time.Now()
		for {
			n := confirmed.Load()
			rate := float64(n) / time.Since(start).Seconds()
			if size > 0 {
				_ = bar.Set64(min(read.Load(), size))
				bar.Describe(fmt.Sprintf("%d confirmed (%.0f %ss/s)", n, rate, noun))
			} else {
				_ = bar.Set64(n)
				bar.Describe("confirmed")
			}
			select {
			case <-t.C:
			case <-p.stop:
				return
			case <-ctx.Done():
				bar.Describe(fmt.Sprintf("interrupted, waiting for confirms: %d confirmed", n))
				select {
				case <-p.stop:
					return
				case <-t.C:
				}
			}
		}
	}()
	return p
}

// finish removes the bar. It may be called on a nil progress.
func (p *progress) finish() {
	if p == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	_ = p.bar.Clear()
	_ = p.bar.Exit()
}
