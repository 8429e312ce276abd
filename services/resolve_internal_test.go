package services

import (
	"encoding/json"
	"fmt"
	"testing"
)

// A catalog that sees instances come and go with ever new patterns stays
// bounded: the order of patterns no instance announces is forgotten.
func TestCatalogForgetsPatternsNobodyAnnounces(t *testing.T) {
	s, err := New("order", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	send := func(m registryMessage) {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		s.handleRegistry(b)
	}
	for i := 0; i < 1000; i++ {
		id := fmt.Sprint("instance-", i)
		send(registryMessage{Type: regAnnounce, Service: "churn", Version: "1.0.0", Instance: id,
			Patterns: []string{fmt.Sprintf("role:churn,id:%d", i)}})
		send(registryMessage{Type: regLeave, Service: "churn", Version: "1.0.0", Instance: id})
	}
	s.mu.Lock()
	n := len(s.cat.order)
	s.mu.Unlock()
	if n > 64+1 {
		t.Errorf("the catalog remembers the order of %d patterns after churn, want at most 65", n)
	}
	// Patterns still announced keep their place.
	send(registryMessage{Type: regAnnounce, Service: "stay", Version: "1.0.0", Instance: "stay-1",
		Patterns: []string{"role:stay"}})
	s.mu.Lock()
	_, kept := s.cat.order["role:stay"]
	s.mu.Unlock()
	if !kept {
		t.Error("the order of an announced pattern was forgotten")
	}
}
