package wire

// Header names. Every patbus message is JSON in the body with these AMQP
// application headers.
const (
	// HeaderPattern is the canonical pattern of the message
	// ("cmd:login,role:user").
	HeaderPattern = "patbus-pattern"
	// HeaderTx is the tx id (Seneca's tx$): one id for the whole chain of
	// acts that one request causes.
	HeaderTx = "patbus-tx"
	// HeaderTraceparent is the W3C trace context.
	HeaderTraceparent = "traceparent"
	// HeaderDeadline is the caller's deadline in Unix milliseconds (int64).
	HeaderDeadline = "patbus-deadline"
	// HeaderService and HeaderVersion name the sender or the answering service.
	HeaderService = "patbus-service"
	HeaderVersion = "patbus-version"
)

// ContentTypeJSON is the content type of every patbus body.
const ContentTypeJSON = "application/json"

// EventsExchange is the topic exchange on which events are emitted by
// pattern (pubsub.EventsExchange): the AMQP type of an event published
// there is its canonical pattern.
const EventsExchange = "patbus.events"
