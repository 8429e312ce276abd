package testenv_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"github.com/patbus/patbus/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestEachBroker(t *testing.T) {
	type run struct {
		name string
		b    bus.Broker
	}
	var runs []run
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		runs = append(runs, run{t.Name(), b})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// The broker works inside the subtest.
		q, err := b.DeclareQueue(ctx, bus.Queue{Name: "patbus.test.testenv." + wire.NewID()[:8], AutoDelete: true})
		if err != nil {
			t.Fatalf("declare: %v", err)
		}
		if err := b.DeleteQueue(ctx, q); err != nil {
			t.Fatalf("delete: %v", err)
		}
	}, bus.WithConnectionName("patbus-testenv-test"))

	want := []string{"TestEachBroker/memory", "TestEachBroker/rabbitmq"}
	if testenv.Required() && len(runs) != len(want) {
		t.Fatalf("ran %d subtests, want %d", len(runs), len(want))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, r := range runs {
		if r.name != want[i] {
			t.Errorf("subtest %d is %s, want %s", i, r.name, want[i])
		}
		// Each broker was closed when its subtest ended.
		if _, err := r.b.DeclareQueue(ctx, bus.Queue{Name: "patbus.test.testenv.closed", AutoDelete: true}); !errors.Is(err, bus.ErrClosed) {
			t.Errorf("%s: broker after its subtest: %v, want bus.ErrClosed", r.name, err)
		}
	}
	if len(runs) == 0 || runs[0].name != want[0] {
		t.Fatal("the memory subtest did not run")
	}
	if _, ok := runs[0].b.(*bus.Memory); !ok {
		t.Errorf("memory subtest got %T", runs[0].b)
	}
	if len(runs) > 1 {
		if _, ok := runs[1].b.(*bus.Rabbit); !ok {
			t.Errorf("rabbitmq subtest got %T", runs[1].b)
		}
	}
}

func TestDeleteQueues(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		name := "patbus.test.testenv.durable." + wire.NewID()[:8]
		t.Run("declare", func(t *testing.T) {
			if _, err := b.DeclareQueue(ctx, bus.Queue{Name: name, Durable: true}); err != nil {
				t.Fatal(err)
			}
			testenv.DeleteQueues(t, b, name, name+".missing")
		})
		// The subtest's cleanup deleted the queue: declaring it again with
		// other settings (not durable) is no longer a precondition failure.
		if _, err := b.DeclareQueue(ctx, bus.Queue{Name: name, AutoDelete: true}); err != nil {
			t.Errorf("queue %s was not deleted: %v", name, err)
		}
		if err := b.DeleteQueue(ctx, name); err != nil {
			t.Error(err)
		}
	})
}
