package baseline

import "testing"

// StartRPC starts the tutorial's RPC server on queue with handle, and a
// tutorial client for it; both close when tb ends.
func StartRPC(tb testing.TB, url, queue string, prefetch int, handle func([]byte) []byte) *RPCClient {
	tb.Helper()
	srv, err := NewRPCServer(url, queue, prefetch, handle)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = srv.Close() })
	cl, err := NewRPCClient(url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cl.Close() })
	return cl
}

// StartContract starts a ContractServer on queue with handle, bound with
// key to the topic exchange named exchange, and a ContractClient; both
// close when tb ends. Calls go through the exchange, as acts go to a
// service by default.
func StartContract(tb testing.TB, url, exchange, key, queue string, prefetch int, handle func([]byte) []byte) *ContractClient {
	tb.Helper()
	srv, err := NewContractServer(url, queue, prefetch, handle)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = srv.Close() })
	if err := srv.Bind(exchange, key); err != nil {
		tb.Fatal(err)
	}
	cl, err := NewContractClient(url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cl.Close() })
	return cl
}
