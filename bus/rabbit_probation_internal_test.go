package bus

import (
	"log/slog"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A channel retired for nacks on a destination during its probation
// publishes again what it got acks for there (RabbitMQ 3.10 can ack, on
// such a channel, messages it never enqueued), and nothing for other
// destinations; a channel past its probation keeps nothing.
func TestProbationRepublishesWhatARetiredChannelAcked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opened time.Time
		want   int
	}{
		{"on probation", time.Now(), 2},
		{"past probation", time.Now().Add(-probationFor), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &publisher{r: &Rabbit{log: slog.New(slog.DiscardHandler)}, retrySig: make(chan struct{}, 1)}
			pc := &pubChan{pending: map[uint64]*pending{}, slots: make(chan struct{}, 64),
				dead: make(chan struct{}), drained: make(chan struct{}), opened: tc.opened}
			var tag uint64
			answer := func(key string, ack bool) *pubMsg {
				m := &pubMsg{key: key, conf: newConfirmation(), written: make(chan struct{})}
				tag++
				pc.pending[tag] = &pending{m: m}
				p.confirmed(pc, amqp.Confirmation{DeliveryTag: tag, Ack: ack})
				return m
			}
			a1, b1, a2 := answer("a", true), answer("b", true), answer("a", true)
			for i := 0; i < nackRetire; i++ {
				answer("a", false)
			}
			select {
			case <-pc.dead:
			default:
				t.Fatal("the channel was not retired")
			}
			for _, m := range []*pubMsg{a1, b1, a2} {
				if err := m.conf.Wait(t.Context()); err != nil {
					t.Errorf("an acked message settled as %v", err)
				}
			}
			p.retryMu.Lock()
			again := p.retry
			p.retryMu.Unlock()
			if len(again) != tc.want {
				t.Fatalf("%d messages to publish again, want %d", len(again), tc.want)
			}
			for _, m := range again {
				if m != a1 && m != a2 || !m.resend {
					t.Errorf("published again: %+v, want a1 and a2 marked as resent", m)
				}
			}
		})
	}
}
