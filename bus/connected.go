package bus

// Connectivity is implemented by brokers that can say whether they are
// connected now; both patbus brokers do. A service's health check (Consul)
// and a gateway's readiness endpoint read it.
type Connectivity interface {
	// Connected reports whether the broker can publish and consume at
	// this moment: false while it reconnects, and after Close.
	Connected() bool
}

var (
	_ Connectivity = (*Rabbit)(nil)
	_ Connectivity = (*Memory)(nil)
)

// Connected reports whether both connections (publishing and consuming)
// are up.
func (r *Rabbit) Connected() bool {
	if r.isClosed() {
		return false
	}
	pub, _ := r.pub.current()
	sub, _ := r.sub.current()
	return pub != nil && sub != nil
}

// Connected reports whether the broker is open.
func (m *Memory) Connected() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.closed
}
