package bus

import "context"

// QueueInfo is what a broker says of a queue at one moment.
type QueueInfo struct {
	// Name of the queue.
	Name string
	// Messages is the number of messages ready for delivery (not counting
	// those delivered and not yet acknowledged), as the broker counts
	// them. Right after a RabbitMQ restart the count can be off until the
	// queue has been read (see the package documentation).
	Messages int
	// Consumers is the number of consumers attached to the queue.
	Consumers int
}

// QueueInspector is implemented by brokers that can report a queue's
// depth without changing it; both patbus brokers do. The work queues'
// statistics, the command line and metrics read queue depths through it.
type QueueInspector interface {
	// InspectQueue reports the queue's ready messages and consumers. A
	// queue that does not exist gives an error wrapping ErrNotFound; the
	// call never declares the queue.
	InspectQueue(ctx context.Context, name string) (QueueInfo, error)
}

var (
	_ QueueInspector = (*Rabbit)(nil)
	_ QueueInspector = (*Memory)(nil)
)
