package bus

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// InspectQueue asks RabbitMQ for the queue's counts with a passive
// declaration on the declaration channel (a missing queue closes that
// channel, which is replaced; it gives ErrNotFound). Nothing is
// remembered for reconnects.
func (r *Rabbit) InspectQueue(ctx context.Context, name string) (QueueInfo, error) {
	op := fmt.Sprintf("inspect queue %q", name)
	if err := checkShort("queue name", name); err != nil {
		return QueueInfo{}, fmt.Errorf("bus: %s: %w", op, err)
	}
	var info QueueInfo
	err := r.declare(ctx, op, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
		if err != nil {
			return err
		}
		info = QueueInfo{Name: q.Name, Messages: q.Messages, Consumers: q.Consumers}
		return nil
	}, nil)
	return info, err
}
