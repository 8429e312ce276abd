// Command patbus acts, emits, enqueues and watches a patbus system on
// RabbitMQ: the command line for the people who publish from scripts and
// for the operators who need to see what travels on the bus.
//
// Install it with
//
//	go install github.com/patbus/patbus/cmd/patbus@latest
//
// # Commands
//
//	patbus act PATTERN [INPUT | -]       act and print the reply
//	patbus emit PATTERN [JSON | -]       emit one event, or one per stdin line
//	patbus enqueue QUEUE [JSON | -]      put work items on a work queue
//	patbus tail [PATTERN]                watch acts and events as they travel
//	patbus services                      the catalog: versions, instances, patterns, health
//	patbus explain MESSAGE               which pattern wins for a message, and why
//	patbus dlq list|show|replay|purge QUEUE   a work queue's dead letters
//	patbus repl                          an interactive prompt that acts
//
// "patbus COMMAND --help" shows each command's flags and examples. Flags may
// come before or after the arguments; "--" ends them.
//
// # Configuration
//
// Every command reads the broker's address from --amqp or PATBUS_AMQP_URL
// (amqp://user:pass@host:5672/vhost; several addresses separated by commas
// are tried in turn). --timeout (default 5s) bounds connecting and each act:
// a broker that is down or refuses the credentials fails within it, with one
// line that names the address without its password. The act and catalog
// exchanges are patbus.act and patbus.registry, or --act-exchange and
// --registry-exchange (PATBUS_ACT_EXCHANGE, PATBUS_REGISTRY_EXCHANGE) for a
// system made with services.WithExchanges. services, explain, act and repl
// read health from Consul with --consul or CONSUL_HTTP_ADDR.
//
// # Output
//
// Replies print as indented JSON on a terminal and as one compact line
// otherwise. --json prints JSON for scripts: one object, or one object per
// line where there are many (tail, services, dlq list). Colour is used only
// when stdout is a terminal, and never with --no-color, NO_COLOR or
// TERM=dumb; progress bars only when stderr is a terminal.
//
// # Exit status
//
//	0    success
//	1    the act was answered with an error (code and message on stderr),
//	     or a failure not listed below
//	2    usage: unknown flag or command, missing argument, malformed
//	     pattern (the offset is named) or JSON (the line is named)
//	3    no route: nobody serves the pattern, or the queue does not exist
//	4    timeout: no reply before --timeout (or the service answered with
//	     the code "timeout": it ran out of the caller's time)
//	5    the broker is unreachable, refused the credentials, or blocks
//	     publishers
//	6    some messages were not confirmed (nacked, returned, or unknown)
//	130  interrupted by Ctrl-C before the work was done (tail and repl,
//	     whose normal end is Ctrl-C or Ctrl-D, exit 0)
//
// # Emitting and enqueuing many
//
// emit and enqueue with "-" read one JSON value per line from stdin and
// keep up to --window messages published and not yet confirmed. A message
// counts as sent only once the broker confirmed it. A malformed line stops
// the run and names its line number. Ctrl-C stops reading, waits for the
// confirms still outstanding (at most 30s) and prints how many were
// confirmed. enqueue writes the wire of WIRE.md section 4 itself (a
// persistent, mandatory, confirmed publish to the default exchange, a UUID
// message id, the tx id), so it needs no worker code, only the queue.
// With --bare it sends what RabbitMQ's tutorial producer sends instead
// (persistent JSON, confirmed, nothing else), which the broker takes
// faster, at the price of the message id workers deduplicate by and of
// the return of an item whose queue is deleted during the run.
//
// # What tail sees
//
// tail binds a tap queue of its own (exclusive, auto-delete, bounded with
// x-max-length and overflow drop-head; what it drops is dead-lettered to a
// second exclusive queue only to be counted and reported) on the act and
// events exchanges. It sees every act made the default way and every event.
// It cannot see acts made by callers with services.WithDirectToQueue (they
// go through the default exchange, which cannot be bound), nor replies (the
// default exchange too), nor work items. With --firehose it reads RabbitMQ's
// firehose instead, which an operator turns on with
// "rabbitmqctl trace_on -p VHOST": then it sees those as well, and ties
// each reply to its act's tx and pattern by correlation id.
//
// # Replaying dead letters
//
// dlq replay moves every item of QUEUE.dead back to QUEUE exactly once even
// when it is interrupted or killed: each item is copied, confirmed, into a
// journal queue QUEUE.dead.replay that dead-letters to QUEUE, then removed
// from QUEUE.dead, then released from the journal, which the broker moves to
// QUEUE by itself. The next replay first reads what an interrupted one left
// in the journal and drops the originals that were copied but not yet
// removed. Run it again until it reports nothing left; the journal is
// deleted once empty.
package main
