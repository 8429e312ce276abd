// Package exampleapp is the main function the commands under examples/
// share. Each example is a function
//
//	func run(ctx context.Context, b bus.Broker, out io.Writer) error
//
// that does its work on the broker it is given and prints to out, so that
// its test can run it on the in-memory broker and on RabbitMQ and compare
// the output. Main wraps such a function into a command: a -amqp flag
// (default $PATBUS_AMQP_URL; empty means the in-memory broker), a context
// cancelled by SIGINT or SIGTERM, the broker opened with bus.Open and closed
// after run, and exit status 1 with "<name>: <error>" on stderr when
// anything fails.
//
// An example with flags of its own defines them on flag.CommandLine before
// it calls Main, which parses them along with -amqp; its run function reads
// them, and flag.Args, when it is called:
//
//	func main() {
//		unit := flag.Duration("unit", time.Second, "work per '.' in a task")
//		exampleapp.Main("taskqueue", func(ctx context.Context, b bus.Broker, out io.Writer) error {
//			return run(ctx, b, out, flag.Args(), *unit)
//		})
//	}
package exampleapp
