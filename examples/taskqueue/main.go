// Command taskqueue is RabbitMQ's second tutorial, the task queue
// ("work queues"), written with patbus: a producer sends tasks whose text
// says how long they take (one unit of work, a second by default, per '.'),
// and two workers share them in turn. The queue is durable, the tasks are
// persistent and confirmed by the broker before the producer goes on, each
// worker takes one task at a time (prefetch 1) and acks it only after the
// work is done, so a worker that dies hands its task to the other.
//
// It runs on the in-memory broker by default, and on RabbitMQ when
// PATBUS_AMQP_URL is set or -amqp is given:
//
//	go run ./examples/taskqueue
//	go run ./examples/taskqueue -unit 100ms "A task..." "Another one."
//	go run ./examples/taskqueue -amqp amqp://guest:guest@127.0.0.1:5672/
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/workers"
)

// Queue is the durable work queue, as in the tutorial.
const Queue = "task_queue"

// DefaultTasks are the tasks the demo sends.
var DefaultTasks = []string{
	"First message.",
	"Second message..",
	"Third message...",
	"Fourth message....",
	"Fifth message.....",
}

func main() {
	unit := flag.Duration("unit", time.Second, "work per '.' in a task")
	consumers := flag.Int("workers", 2, "number of workers")
	start("taskqueue", func(ctx context.Context, b bus.Broker, out io.Writer) error {
		tasks := flag.Args()
		if len(tasks) == 0 {
			tasks = DefaultTasks
		}
		return run(ctx, b, out, tasks, *unit, *consumers)
	})
}

// run starts the workers, sends the tasks and returns when every task has
// been done, or when ctx ends.
func run(ctx context.Context, b bus.Broker, out io.Writer, tasks []string, unit time.Duration, consumers int) (err error) {
	if consumers < 1 || unit < 0 {
		return errors.New("need at least one worker and a unit of work of zero or more")
	}
	p := &printer{out: out}
	done := make(chan struct{}, len(tasks))

	// The workers: each its own consumer, one task at a time.
	for i := 1; i <= consumers; i++ {
		q, err := workers.New(ctx, b, Queue, workers.WithPrefetch(1))
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = errors.Join(err, q.Shutdown(sctx))
		}()
		err = q.Start(ctx, workers.Typed(func(ctx context.Context, task string) error {
			p.Printf("worker %d: [x] Received %s", i, task)
			if err := work(ctx, task, unit); err != nil {
				return err
			}
			p.Printf("worker %d: [x] Done", i)
			done <- struct{}{}
			return nil
		}))
		if err != nil {
			return err
		}
	}

	// The producer: each task persistent and confirmed.
	producer, err := workers.New(ctx, b, Queue)
	if err != nil {
		return err
	}
	for _, task := range tasks {
		if err := producer.Enqueue(ctx, task); err != nil {
			return err
		}
		p.Printf(" [x] Sent %s", task)
	}
	for range tasks {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// work takes one unit of time per '.' in the task.
func work(ctx context.Context, task string, unit time.Duration) error {
	t := time.NewTimer(time.Duration(strings.Count(task, ".")) * unit)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// start opens the broker (bus.Open: the in-memory broker for "") at the
// address of -amqp (PATBUS_AMQP_URL by default) and calls run with a
// context that SIGINT and SIGTERM cancel; it exits with status 1 if that
// fails.
func start(name string, run func(ctx context.Context, b bus.Broker, out io.Writer) error) {
	amqpURL := flag.String("amqp", os.Getenv("PATBUS_AMQP_URL"), "RabbitMQ address; empty means the in-memory broker")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := func() error {
		b, err := bus.Open(ctx, *amqpURL)
		if err != nil {
			return err
		}
		defer b.Close()
		return run(ctx, b, os.Stdout)
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// printer writes whole lines from several goroutines (the workers print
// concurrently).
type printer struct {
	mu  sync.Mutex
	out io.Writer
}

func (p *printer) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format+"\n", args...)
}
