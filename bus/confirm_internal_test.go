package bus

import (
	"errors"
	"testing"
)

func TestConfirmationFailed(t *testing.T) {
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	ok := newConfirmation()
	f := ok.Failed()
	ok.resolve(nil)
	ok.resolve(ErrNacked) // too late: the first outcome counts
	if !closed(ok.Done()) || closed(f) || closed(ok.Failed()) || ok.Err() != nil {
		t.Errorf("confirmed: done %v, failed %v, err %v", closed(ok.Done()), closed(f), ok.Err())
	}

	early := newConfirmation()
	f = early.Failed()
	early.resolve(ErrNacked)
	if !closed(f) || !errors.Is(early.Err(), ErrNacked) {
		t.Errorf("failed after Failed was asked: failed %v, err %v", closed(f), early.Err())
	}

	late := newConfirmation()
	late.resolve(ErrUnroutable)
	if !closed(late.Failed()) {
		t.Error("failed before Failed was asked: Failed not closed")
	}
}
