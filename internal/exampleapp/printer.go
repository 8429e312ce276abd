package exampleapp

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// Printer writes whole lines to an io.Writer from several goroutines (the
// examples' subscribers and workers print concurrently).
type Printer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewPrinter returns a Printer that writes to w.
func NewPrinter(w io.Writer) *Printer { return &Printer{w: w} }

// Printf writes one line: format and args as fmt.Sprintf, then a newline.
func (p *Printer) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// Await receives n values from ch, or returns ctx.Err() when ctx ends
// first: the examples wait for their subscribers this way.
func Await(ctx context.Context, ch <-chan struct{}, n int) error {
	for i := 0; i < n; i++ {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
