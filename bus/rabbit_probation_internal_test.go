package bus

import (
	"log/slog"
	"strings"
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

// A message published again by such a retirement was confirmed to its
// caller: a nack of the new copy publishes it again (while owedFor has not
// passed) instead of dropping it, and once owedFor has passed the loss is
// logged as an error with the message id.
func TestOwedMessageIsPublishedAgainAfterANack(t *testing.T) {
	for _, tc := range []struct {
		name  string
		owed  time.Time
		again bool
	}{
		{"owed lately", time.Now(), true},
		{"owed too long", time.Now().Add(-owedFor), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			p := &publisher{r: &Rabbit{log: slog.New(slog.NewTextHandler(&logs, nil))}, retrySig: make(chan struct{}, 1)}
			pc := &pubChan{pending: map[uint64]*pending{}, slots: make(chan struct{}, 64),
				dead: make(chan struct{}), drained: make(chan struct{}), opened: time.Now()}
			m := &pubMsg{key: "a", conf: newConfirmation(), written: make(chan struct{}), owed: tc.owed,
				pub: amqp.Publishing{MessageId: "item-7"}}
			m.conf.resolve(nil) // its first copy was acked
			pc.pending[1] = &pending{m: m}
			p.confirmed(pc, amqp.Confirmation{DeliveryTag: 1, Ack: false})
			if err := m.conf.Err(); err != nil {
				t.Fatalf("the caller's confirmation changed to %v", err)
			}
			p.retryMu.Lock()
			again := p.retry
			p.retryMu.Unlock()
			if got := len(again) == 1 && again[0] == m; got != tc.again {
				t.Fatalf("published again: %v (retry %d), want %v", got, len(again), tc.again)
			}
			if lost := strings.Contains(logs.String(), "level=ERROR") && strings.Contains(logs.String(), "item-7"); lost == tc.again {
				t.Errorf("error log naming the message: %v, want %v; log:\n%s", lost, !tc.again, logs.String())
			}
		})
	}
}

// A retirement for nacks on a destination takes the channels opened with
// the retired one (still on probation) along: each is retired and
// publishes again what it acked for that destination; an ack that comes
// afterwards, for a copy pending on a retired channel, publishes it again
// as well; a channel past its probation is left alone.
func TestRetirementTakesSiblingsOnProbation(t *testing.T) {
	p := &publisher{r: &Rabbit{log: slog.New(slog.DiscardHandler)}, retrySig: make(chan struct{}, 1)}
	newChan := func(opened time.Time) *pubChan {
		return &pubChan{pending: map[uint64]*pending{}, slots: make(chan struct{}, 64),
			dead: make(chan struct{}), drained: make(chan struct{}), opened: opened}
	}
	a, b, old := newChan(time.Now()), newChan(time.Now()), newChan(time.Now().Add(-probationFor))
	p.live.Store(&[]*pubChan{a, b, old})
	var tag uint64
	send := func(pc *pubChan, key string) (*pubMsg, uint64) {
		m := &pubMsg{key: key, conf: newConfirmation(), written: make(chan struct{})}
		tag++
		pc.pending[tag] = &pending{m: m}
		return m, tag
	}
	answer := func(pc *pubChan, key string, ack bool) *pubMsg {
		m, tg := send(pc, key)
		p.confirmed(pc, amqp.Confirmation{DeliveryTag: tg, Ack: ack})
		return m
	}
	b1, b2 := answer(b, "q", true), answer(b, "other", true)
	o1 := answer(old, "q", true)
	late, lateTag := send(a, "q") // pending on a when it retires
	for i := 0; i < nackRetire; i++ {
		answer(a, "q", false)
	}
	for _, pc := range []*pubChan{a, b} {
		select {
		case <-pc.dead:
		default:
			t.Fatal("a channel on probation was not retired")
		}
	}
	select {
	case <-old.dead:
		t.Fatal("a channel past its probation was retired")
	default:
	}
	p.confirmed(a, amqp.Confirmation{DeliveryTag: lateTag, Ack: true})
	if err := late.conf.Err(); err != nil {
		t.Fatalf("the late ack settled as %v", err)
	}
	p.retryMu.Lock()
	again := append([]*pubMsg(nil), p.retry...)
	p.retryMu.Unlock()
	got := map[*pubMsg]bool{}
	for _, m := range again {
		got[m] = true
		if m.owed.IsZero() {
			t.Error("a message published again is not marked owed")
		}
	}
	if len(again) != 2 || !got[b1] || !got[late] || got[b2] || got[o1] {
		t.Errorf("published again %d messages (b1 %v, late %v, b2 %v, o1 %v); want b1 and late", len(again), got[b1], got[late], got[b2], got[o1])
	}
}
