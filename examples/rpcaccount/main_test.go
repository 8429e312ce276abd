package main

import (
	"testing"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const want = `account server waiting for requests on account.rpc
requesting user 2
got {"state":1000,"msg":"ok","data":{"uid":2,"name":"Ada Lovelace","email":"ada@example.com"}}
requesting user 99
got {"state":2000,"msg":"user not found","data":null}
`

func TestRun(t *testing.T) {
	testenv.EachBroker(t, func(t *testing.T, b bus.Broker) {
		if got := testenv.Output(t, b, run); got != want {
			t.Errorf("output:\n%s\nwant:\n%s", got, want)
		}
	})
}
