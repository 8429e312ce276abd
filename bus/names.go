package bus

import "github.com/patbus/patbus/patterns"

// MaxNameLen is the longest AMQP short string: an exchange or queue name,
// a routing or binding key, a correlation id, a message type or app-id.
// Both brokers refuse longer ones with ErrInvalidConfig, so a name too
// long is a clear error where it is made, never a closed channel later.
// It is patterns.MaxKeyLen, the limit on a pattern's routing key.
const MaxNameLen = patterns.MaxKeyLen
