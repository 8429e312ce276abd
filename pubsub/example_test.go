package pubsub_test

import (
	"context"
	"fmt"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/pubsub"
)

func Example() {
	ctx := context.Background()
	b, _ := bus.NewMemory() // or bus.Open(ctx, "amqp://…") for RabbitMQ
	defer b.Close()
	ps, err := pubsub.New(ctx, b)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ps.Close()

	type login struct {
		UID  int    `json:"uid"`
		Role string `json:"role,omitempty"`
		Evt  string `json:"evt,omitempty"`
	}
	got := make(chan login)
	// One copy per group: every instance of "audit" shares one durable
	// queue. The glob pair evt:log* is checked by the subscriber.
	_, err = ps.Subscribe(ctx, "role:user,evt:log*", pubsub.Typed(func(ctx context.Context, v login) error {
		got <- v
		return nil
	}), pubsub.Group("audit"))
	if err != nil {
		fmt.Println(err)
		return
	}
	// The pattern's pairs are added to the body.
	if err := ps.Emit(ctx, "role:user,evt:login", login{UID: 2}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%+v\n", <-got)
	// Output:
	// {UID:2 Role:user Evt:login}
}

// A middleware sees every event a subscription handles, before and after
// its handler: here it prints the event's pattern, routing key and
// outcome.
func ExampleWithMiddleware() {
	ctx := context.Background()
	b, _ := bus.NewMemory()
	defer b.Close()

	done := make(chan struct{})
	trace := func(next patbus.Handler) patbus.Handler {
		return patbus.HandlerFunc(func(ctx context.Context, ev *pubsub.Event) error {
			err := next.Handle(ctx, ev)
			fmt.Printf("%s key=%s err=%v\n", ev.Pattern, ev.RoutingKey, err)
			close(done)
			return err
		})
	}
	ps, err := pubsub.New(ctx, b, pubsub.WithMiddleware(trace))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ps.Close()

	_, err = ps.Subscribe(ctx, "role:order", pubsub.HandlerFunc(func(ctx context.Context, ev *pubsub.Event) error {
		fmt.Printf("order event, tx from the emitter: %v\n", patbus.Tx(ctx) == "tx-42")
		return nil
	}))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := ps.Emit(patbus.WithTx(ctx, "tx-42"), "role:order,evt:paid,id:7", nil); err != nil {
		fmt.Println(err)
		return
	}
	<-done
	// Output:
	// order event, tx from the emitter: true
	// evt:paid,id:7,role:order key=evt:paid.id:7.role:order err=<nil>
}
