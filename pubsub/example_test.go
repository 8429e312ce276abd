package pubsub_test

import (
	"context"
	"fmt"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/pubsub"
)

func Example() {
	ctx := context.Background()
	b, _ := bus.NewMemory() // or bus.Open(ctx, "amqp://…") for RabbitMQ
	defer b.Close()
	ps, err := pubsub.New(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ps.Close()

	got := make(chan string)
	type login struct {
		UID int `json:"uid"`
	}
	// One copy per group: every instance of "audit" shares one durable queue.
	// The glob pair evt:log* is checked by the subscriber.
	_, err = ps.Subscribe(ctx, "role:user,evt:log*", pubsub.Typed(func(ctx context.Context, ev *pubsub.Event, v login) error {
		got <- fmt.Sprintf("%s uid=%d key=%s", ev.Pattern, v.UID, ev.RoutingKey)
		return nil
	}), pubsub.Group("audit"))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := ps.Emit(ctx, "role:user,evt:login", login{UID: 2}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-got)
	// Output:
	// evt:login,role:user uid=2 key=evt:login.role:user
}
