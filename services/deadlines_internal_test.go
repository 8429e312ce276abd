package services

import (
	"testing"
	"time"
)

// A deadline slot closes at its acts' deadlines or less than a width
// after them, never before; acts whose deadlines fall in one width share
// it, and an act that arrives late with an earlier deadline gets a slot of
// its own without taking the current one from the acts after it.
func TestDeadlineSlots(t *testing.T) {
	const timeout = 200 * time.Millisecond
	d := newDeadlineSlots(timeout)
	if want := timeout / slotsPerTimeout; d.width != want {
		t.Fatalf("width %v, want %v", d.width, want)
	}
	first := time.Now().Add(20 * time.Millisecond)
	a := d.after(first)
	if b := d.after(first.Add(d.width / 2)); b != a {
		t.Error("a deadline half a width later has a slot of its own")
	}
	early := d.after(first.Add(-time.Millisecond))
	if early == a {
		t.Error("a deadline before the slot's range shares it")
	}
	if b := d.after(first.Add(d.width / 4)); b != a {
		t.Error("the slot of an earlier deadline replaced the current one")
	}
	later := first.Add(3 * d.width)
	c := d.after(later)
	if c == a {
		t.Error("a deadline three widths later shares the first slot")
	}
	for _, w := range []struct {
		name     string
		ch       <-chan struct{}
		deadline time.Time
	}{{"early", early, first.Add(-time.Millisecond)}, {"first", a, first.Add(d.width / 2)}, {"later", c, later}} {
		select {
		case <-w.ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: slot not closed 5 s after its deadline", w.name)
		}
		if now := time.Now(); now.Before(w.deadline) {
			t.Errorf("%s: slot closed %v before the deadline", w.name, w.deadline.Sub(now))
		}
	}
}

// Very short timeouts get slots of at least minSlot.
func TestDeadlineSlotsMinimumWidth(t *testing.T) {
	if got := newDeadlineSlots(time.Millisecond).width; got != minSlot {
		t.Fatalf("width %v, want %v", got, minSlot)
	}
}
