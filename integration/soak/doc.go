// Package soak drives patbus's traffic through a RabbitMQ cluster that
// something keeps breaking, and keeps the account: acts (services),
// work items (workers) and group events (pubsub), every one with a
// sequence number in its body and a line in a Ledger (sent, confirmed,
// failed by code, hung, received, duplicates, lost).
//
// # Pieces
//
// Client dials the cluster with every node's address (so durable queues
// are quorum queues) and keeps what its log says (the node each
// connection reached, warnings by message). The workload types
// (ActServer, ActCaller, WorkQueue, Events) are the only users of
// services, workers and pubsub in the package. A Driver runs one kind of
// traffic from a few goroutines at a bounded rate, every operation with a
// deadline; one that returns HangSlack after its deadline, or never, is
// hung. Ledger.Window gives the account around one fault: failures by
// code, the time to the first success and to steady success.
//
// # The soak
//
// Run keeps acts, events and work flowing on a cluster started with
// internal/testenv (StartRabbitCluster) for a given time, injects faults
// at random (kill -9 and restart of a node, SIGSTOP and SIGCONT past the
// heartbeat, rabbitmqctl close_all_connections), samples the heap, the
// RSS and the goroutines, and returns a Report. TestCluster/Soak in
// integration/cluster runs it (scripts/soak.sh); the other tests there
// use the same pieces for one fault at a time.
package soak
