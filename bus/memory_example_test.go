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

// A server answers a request with Reply: the reply goes to the request's
// reply-to, then the request is acked. On RabbitMQ, ConsumeOptions.Replies
// sends both on the request's own channel.
func ExampleReply() {
	ctx := context.Background()
	b, err := bus.NewMemory()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()

	requests, _ := b.DeclareQueue(ctx, bus.Queue{Name: "account"})
	replies, _ := b.DeclareQueue(ctx, bus.Queue{Exclusive: true})
	server, _ := b.Consume(ctx, requests, bus.ConsumeOptions{Replies: true})
	defer server.Cancel(ctx)
	client, _ := b.Consume(ctx, replies, bus.ConsumeOptions{NoAck: true})
	defer client.Cancel(ctx)

	_ = bus.PublishAndWait(ctx, b, "", requests, bus.Message{CorrelationID: "42", ReplyTo: replies, Body: []byte(`{"id":2}`)})
	req := <-server.Deliveries()
	if err := bus.Reply(ctx, b, req, bus.Message{CorrelationID: req.CorrelationID, Body: []byte(`{"name":"Ada"}`)}); err != nil {
		fmt.Println(err)
		return
	}
	rep := <-client.Deliveries()
	fmt.Println(rep.CorrelationID, string(rep.Body))
	// Output:
	// 42 {"name":"Ada"}
}
