package engine

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/patbus/patbus"
)

// recoverPanics turns a handler's panic into an error wrapping
// patbus.ErrPanic, logged with its stack; the consumer keeps running.
func recoverPanics(log *slog.Logger, name string) patbus.Middleware {
	return func(next patbus.Handler) patbus.Handler {
		return patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) (err error) {
			defer func() {
				if v := recover(); v != nil {
					log.LogAttrs(ctx, slog.LevelError, "patbus: handler panicked",
						slog.String("consumer", name), slog.String("queue", m.Queue),
						slog.String("pattern", m.Pattern), slog.String("tx", m.Tx), slog.String("id", m.ID),
						slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
					err = fmt.Errorf("%w: %v", patbus.ErrPanic, v)
				}
			}()
			return next.Handle(ctx, m)
		})
	}
}

// expire fails a message that arrives after its deadline with
// patbus.ErrExpired, without running anything further: nobody waits for
// its answer any more.
func expire(next patbus.Handler) patbus.Handler {
	return patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
		if !m.Deadline.IsZero() && !time.Now().Before(m.Deadline) {
			return fmt.Errorf("%w by %v", patbus.ErrExpired, time.Since(m.Deadline).Round(time.Millisecond))
		}
		return next.Handle(ctx, m)
	})
}

// logHandled logs every message handled, at debug level, with how long
// its handler took and how it ended. It costs one check when debug
// logging is off.
func logHandled(log *slog.Logger, name string) patbus.Middleware {
	return func(next patbus.Handler) patbus.Handler {
		return patbus.HandlerFunc(func(ctx context.Context, m *patbus.Message) error {
			if !log.Enabled(ctx, slog.LevelDebug) {
				return next.Handle(ctx, m)
			}
			start := time.Now()
			err := next.Handle(ctx, m)
			attrs := []slog.Attr{slog.String("consumer", name), slog.String("kind", m.Kind.String()),
				slog.String("queue", m.Queue), slog.String("pattern", m.Pattern), slog.String("tx", m.Tx),
				slog.String("id", m.ID), slog.Duration("took", time.Since(start))}
			if err != nil {
				attrs = append(attrs, slog.String("code", patbus.Code(err)), slog.String("err", err.Error()))
			}
			log.LogAttrs(ctx, slog.LevelDebug, "patbus: handled", attrs...)
			return err
		})
	}
}
