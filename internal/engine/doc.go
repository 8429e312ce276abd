// Package engine is the one consumer loop that every patbus consumer runs:
// the rpc server, pubsub subscriptions, workers and the services' catalog.
//
// A Consumer consumes one queue with a prefetch, runs a bounded pool of
// goroutines over the deliveries (never on the broker's delivery
// goroutine; the one that went idle last takes the next delivery, see
// relay.go), reads each delivery into a patbus.Message with the one header
// codec (internal/wire), gives it a context that carries its tx id and
// deadline, and runs the handler chain:
//
//	recover → expire (acts) → log → the program's middleware → the package's handler
//
// Then the package's Settle decides: ack, reply then ack, retry, requeue,
// or dead-letter. Recovery, the tx and deadline context and logging are
// written once here; tracing and metrics are middleware the program adds.
//
// Shutdown stops intake, lets the running handlers finish and settle, and
// releases the consumer; when its context ends first it cancels the
// handlers' context and waits for them (their messages go back to the
// queue). Close does that at once. Both leave the broker open.
package engine
