package bus_test

import (
	"context"
	"fmt"

	"github.com/patbus/patbus/bus"
)

// The in-memory broker routes like RabbitMQ: a topic exchange, a queue bound
// with a wildcard, a confirmed publish, and a consumer that acks.
func ExampleNewMemory() {
	ctx := context.Background()
	b, err := bus.NewMemory()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()

	_ = b.DeclareExchange(ctx, bus.Exchange{Name: "events", Kind: bus.Topic})
	q, _ := b.DeclareQueue(ctx, bus.Queue{Name: "audit"})
	_ = b.Bind(ctx, bus.Binding{Exchange: "events", Queue: q, Key: "user.#"})

	sub, _ := b.Consume(ctx, q, bus.ConsumeOptions{Prefetch: 10})
	defer sub.Cancel(ctx)

	if err := bus.PublishAndWait(ctx, b, "events", "user.login", bus.Message{Body: []byte("alice")}); err != nil {
		fmt.Println(err)
		return
	}
	d := <-sub.Deliveries()
	fmt.Println(d.RoutingKey, string(d.Body))
	_ = d.Ack()

	// Mandatory messages that match no queue come back.
	c, _ := b.Publish(ctx, "events", "order.paid", bus.Message{Mandatory: true})
	fmt.Println(c.Wait(ctx))
	// Output:
	// user.login alice
	// bus: message unroutable: exchange "events" key "order.paid": 312 NO_ROUTE
}
