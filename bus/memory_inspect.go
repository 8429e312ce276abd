package bus

import (
	"context"
	"fmt"
)

// InspectQueue reports the queue's ready messages and the consumers
// taking deliveries from it.
func (m *Memory) InspectQueue(ctx context.Context, name string) (QueueInfo, error) {
	if err := m.begin(ctx, "inspect queue"); err != nil {
		return QueueInfo{}, err
	}
	defer m.end()
	q, ok := m.queues[name]
	if !ok {
		return QueueInfo{}, fmt.Errorf("bus: inspect queue %q: %w", name, ErrNotFound)
	}
	return QueueInfo{Name: name, Messages: q.ready.len(), Consumers: len(q.consumers)}, nil
}
