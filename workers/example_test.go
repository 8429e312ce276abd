package workers_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/workers"
)

func Example() {
	ctx := context.Background()
	b, _ := bus.NewMemory() // or bus.Open(ctx, "amqp://…") for RabbitMQ
	defer b.Close()

	type resize struct {
		Image string `json:"image"`
		Width int    `json:"width"`
	}
	q, err := workers.New(ctx, b, "images", workers.WithConcurrency(4), workers.WithMaxAttempts(3),
		workers.WithBackoff(10*time.Millisecond, time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}

	// Enqueue returns once the broker has confirmed the item.
	if err := q.Enqueue(ctx, resize{Image: "cat.png", Width: 128}); err != nil {
		fmt.Println(err)
		return
	}

	// Work runs the handler until its context ends, then stops gracefully.
	wctx, stop := context.WithCancel(ctx)
	err = q.Work(wctx, workers.Typed(func(ctx context.Context, r resize) error {
		if r.Width <= 0 {
			return workers.Poison(errors.New("width must be positive")) // dead-letter now
		}
		fmt.Printf("resized %s to %d\n", r.Image, r.Width)
		stop()
		return nil
	}))
	fmt.Println("work:", err)
	fmt.Println(q.DeadLetterQueue(), q.RetryQueues())
	// Output:
	// resized cat.png to 128
	// work: <nil>
	// images.dead [images.retry.10ms images.retry.20ms]
}

func ExampleQueue_Stats() {
	ctx := context.Background()
	b, _ := bus.NewMemory()
	defer b.Close()

	q, _ := workers.New(ctx, b, "mail", workers.WithConcurrency(1), workers.WithMaxAttempts(2),
		workers.WithBackoff(time.Minute, time.Minute))
	for _, to := range []string{"ann@example.com", "bob@example.com", "not an address"} {
		_ = q.Enqueue(ctx, to)
	}
	st, _ := q.Stats(ctx)
	fmt.Printf("before: ready %d, retrying %d, dead %d\n", st.Ready, st.Retrying, st.Dead)

	wctx, stop := context.WithCancel(ctx)
	handled := 0 // one handler at a time (WithConcurrency(1))
	_ = q.Work(wctx, workers.Typed(func(ctx context.Context, to string) error {
		if handled++; handled == 3 {
			stop() // Work settles this item, then returns
		}
		switch to {
		case "not an address":
			return workers.Poison(errors.New("no @"))
		case "bob@example.com":
			return errors.New("mail server busy") // retried in a minute
		}
		return nil
	}))
	st, _ = q.Stats(ctx)
	fmt.Printf("after: ready %d, retrying %d, dead %d\n", st.Ready, st.Retrying, st.Dead)
	for _, r := range st.Retry {
		fmt.Printf("%s waits %v: %d\n", r.Queue, r.Delay, r.Ready)
	}
	// Output:
	// before: ready 3, retrying 0, dead 0
	// after: ready 0, retrying 1, dead 1
	// mail.retry.1m0s waits 1m0s: 1
}
