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
	q, err := workers.New(b, "images", workers.WithConcurrency(4), workers.WithMaxAttempts(3),
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
