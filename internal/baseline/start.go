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
