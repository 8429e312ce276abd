package patbus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/patterns"
)

func TestCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("plain"), patbus.CodeInternal},
		{patbus.NewError("not_found", "no user 7"), "not_found"},
		{fmt.Errorf("wrapped: %w", patbus.NewError("conflict", "")), "conflict"},
		{&patbus.Error{}, patbus.CodeInternal},
		{fmt.Errorf("x: %w", patbus.ErrNoRoute), patbus.CodeNoRoute},
		{&bus.ReturnError{}, patbus.CodeNoRoute},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), patbus.CodeTimeout},
		// A timeout while the broker was away is a timeout.
		{fmt.Errorf("%w: %w", bus.ErrDisconnected, context.DeadlineExceeded), patbus.CodeTimeout},
		{fmt.Errorf("x: %w", bus.ErrDisconnected), patbus.CodeUnavailable},
		{fmt.Errorf("x: %w", context.Canceled), patbus.CodeCanceled},
		{fmt.Errorf("x: %w", patbus.ErrClosed), patbus.CodeClosed},
		{fmt.Errorf("x: %w", bus.ErrTooLarge), patbus.CodeTooLarge},
		{fmt.Errorf("x: %w", patbus.ErrInvalidInput), patbus.CodeInvalidInput},
		{&patterns.SyntaxError{}, patbus.CodeInvalidPattern},
		{fmt.Errorf("x: %w", patbus.ErrInvalidConfig), patbus.CodeInvalidConfig},
		{fmt.Errorf("x: %w", bus.ErrNacked), patbus.CodeRejected},
		{fmt.Errorf("x: %w", bus.ErrUnconfirmed), patbus.CodeUnconfirmed},
		{fmt.Errorf("x: %w", patbus.ErrPanic), patbus.CodePanic},
		{fmt.Errorf("x: %w", patbus.ErrExpired), patbus.CodeTimeout},
		// A message the bus did not send again: its deadline had passed.
		{fmt.Errorf("x: %w", bus.ErrExpired), patbus.CodeTimeout},
	} {
		if got := patbus.Code(c.err); got != c.want {
			t.Errorf("Code(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestErrorIs(t *testing.T) {
	timeout := patbus.NewError(patbus.CodeTimeout, "slow")
	if !errors.Is(timeout, patbus.ErrTimeout) || !errors.Is(timeout, context.DeadlineExceeded) {
		t.Error("a remote timeout does not match ErrTimeout and context.DeadlineExceeded")
	}
	if !errors.Is(patbus.NewError(patbus.CodeInvalidInput, ""), patbus.ErrInvalidInput) {
		t.Error("a remote invalid_input does not match ErrInvalidInput")
	}
	// A remote service that found no route for its own act does not make
	// this act unroutable.
	if errors.Is(patbus.NewError(patbus.CodeNoRoute, ""), patbus.ErrNoRoute) {
		t.Error("a remote no_route matches ErrNoRoute")
	}
	if !errors.Is(fmt.Errorf("w: %w", patbus.NewError("not_found", "x")), patbus.NewError("not_found", "")) {
		t.Error("errors.Is does not compare codes")
	}
	if errors.Is(patbus.NewError("not_found", "x"), patbus.NewError("conflict", "")) {
		t.Error("different codes match")
	}
}

func TestAsError(t *testing.T) {
	if patbus.AsError(nil) != nil {
		t.Error("AsError(nil) is not nil")
	}
	orig := patbus.NewError("", "no code").WithDetails(map[string]any{"k": 1})
	got := patbus.AsError(fmt.Errorf("w: %w", orig))
	if got.Code != patbus.CodeInternal || got.Message != "no code" || got.Details["k"] != 1 || got == orig {
		t.Errorf("AsError of a code-less *Error = %+v", got)
	}
	if got := patbus.AsError(fmt.Errorf("w: %w", patbus.ErrNoRoute)); got.Code != patbus.CodeNoRoute {
		t.Errorf("AsError(no route).Code = %q", got.Code)
	}
}

func TestTx(t *testing.T) {
	ctx := context.Background()
	if patbus.Tx(ctx) != "" {
		t.Fatal("a bare context carries a tx")
	}
	if patbus.WithTx(ctx, "") != ctx {
		t.Error("WithTx with an empty id changed the context")
	}
	tx := patbus.NewTx()
	if len(tx) != 32 || patbus.Tx(patbus.WithTx(ctx, tx)) != tx {
		t.Errorf("NewTx %q does not round-trip through WithTx", tx)
	}
	if patbus.NewTx() == tx {
		t.Error("NewTx repeated itself")
	}
}
