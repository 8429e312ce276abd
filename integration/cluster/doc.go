// Package cluster holds the tests of patbus on a three-node RabbitMQ
// cluster whose nodes fail under load: acts at 16 concurrent callers,
// work items and group events, while the node that hosts their queues'
// leader is killed with SIGKILL and restarted, or paused with SIGSTOP
// past the heartbeat (a network partition) and resumed. Each test keeps a
// ledger (package soak) and checks it: no confirmed message lost,
// duplicates within what was in flight, every failure typed
// (patbus.Code), nothing hung, and acts answered again within 5 s of a
// kill. It logs the figures of each fault (lines starting "CLUSTER").
//
// TestCluster/Soak then keeps acts, work and events flowing for two
// minutes (-soak) while faults strike nodes at random (soak.Run), and
// logs the ledger with the memory and goroutine curve (after "SOAK").
// scripts/soak.sh runs it alone for as long as it is told.
//
// The tests build only with the tag cluster, outside the default run,
// because they still find a loss: a producer whose connection was on the
// killed node, publishing again a few hundred milliseconds after the
// kill while the node's quorum queues elect their leaders, can have a
// few publishes confirmed that no consumer ever receives
// (TestCluster/WorkAndEventsKillLeader: 5 of 4,700 work items, in one run
// of four; the producer's new channels were retired for nacks on that
// queue moments later, so the acks most likely came from channels
// RabbitMQ 3.10 had broken for it). The bus now publishes again what a
// channel retired on its probation had acked (bus's package doc); until
// runs enough to show the loss gone have passed, a test that may fail by
// chance must not decide whether a change lands.
//
// The cluster is private: three nodes on 127.0.0.1 started by
// internal/testenv (Debian's rabbitmq-server, no Docker), one for the
// whole test binary. Run the tests with
//
//	cd integration && PATBUS_REQUIRE_SERVICES=1 go test -tags cluster -race -count=1 -v -run TestCluster ./cluster
package cluster
