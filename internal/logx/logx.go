// Package logx holds the one logging helper patbus packages share: a logger
// that drops every record, which is what a nil *slog.Logger option means.
package logx

import (
	"context"
	"log/slog"
)

// Discard returns a logger that drops every record (slog.DiscardHandler
// needs Go 1.24; patbus supports 1.22).
func Discard() *slog.Logger { return slog.New(discardHandler{}) }

// OrDiscard returns l, or a discarding logger when l is nil.
func OrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return Discard()
	}
	return l
}

type discardHandler struct{}

func (discardHandler) Enabled(context.Context, slog.Level) bool  { return false }
func (discardHandler) Handle(context.Context, slog.Record) error { return nil }
func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discardHandler) WithGroup(string) slog.Handler           { return d }
