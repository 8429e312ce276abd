package services

import (
	"context"
	"sync"
	"testing"
	"time"
)

// The goroutines that run local acts are reused, at most maxIdleRunners
// of them wait for the next act after a burst, and they end when the
// service closes.
func TestLocalRunnersAreReusedAndBounded(t *testing.T) {
	s, err := New("runners", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release := make(chan struct{})
	var started sync.WaitGroup
	type in struct{ Block bool }
	if err := AddFunc(s, "cmd:work", func(ctx context.Context, v in) (int, error) {
		if v.Block {
			started.Done()
			<-release
		}
		return 1, nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Ready(ctx); err != nil {
		t.Fatal(err)
	}

	// Sequential acts find the goroutine an earlier one used (a new one
	// starts only when the last has not yet gone back to waiting).
	for i := 0; i < 100; i++ {
		if _, err := Call[int](ctx, s, "cmd:work", in{}); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, s.runner, func(n int32) bool { return n >= 1 && n <= 4 }, "after 100 sequential acts")

	// A burst of 3×maxIdleRunners acts that all block at once needs as
	// many goroutines; afterwards only maxIdleRunners stay.
	const burst = 3 * maxIdleRunners
	started.Add(burst)
	var wg sync.WaitGroup
	for i := 0; i < burst; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Call[int](ctx, s, "cmd:work", in{Block: true}); err != nil {
				t.Error(err)
			}
		}()
	}
	started.Wait()
	if n := s.runner.idle.Load(); n != 0 {
		t.Errorf("%d runners idle while every one runs a blocked act", n)
	}
	close(release)
	wg.Wait()
	waitIdle(t, s.runner, func(n int32) bool { return n == maxIdleRunners }, "after the burst")

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, s.runner, func(n int32) bool { return n == 0 }, "after Close")
}

// waitIdle waits up to 5 s for the runner's idle count to satisfy ok: a
// goroutine that finished its act counts itself idle a moment after its
// caller has the answer.
func waitIdle(t *testing.T, r *localRunner, ok func(int32) bool, when string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(r.idle.Load()) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d runners idle", when, r.idle.Load())
		}
		time.Sleep(time.Millisecond)
	}
}
