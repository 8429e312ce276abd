package bus

import (
	"context"
	"strings"
)

// Open returns the broker for addr: the in-memory broker when addr is empty,
// otherwise the RabbitMQ broker dialled at addr, which may hold several
// amqp:// or amqps:// addresses separated by commas, tried in turn.
func Open(ctx context.Context, addr string, opts ...Option) (Broker, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return NewMemory(opts...)
	}
	return Dial(ctx, strings.Split(addr, ","), opts...)
}
