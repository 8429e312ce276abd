// Package baseline holds plain amqp091-go programs, written the way
// RabbitMQ's tutorials write them, and an HTTP load generator, that the
// benchmarks of rpc, pubsub, workers and the gateway run next to patbus in
// the same run, on the same broker, so that patbus's figures are always
// read as a ratio to what a hand-written client achieves on that machine.
//
// Nothing here is part of patbus's API, and nothing outside benchmarks and
// tests may import it.
package baseline
