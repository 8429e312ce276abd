package workers

import "time"

// SetSeenClock makes s read the time from now.
func SetSeenClock(s *MemorySeen, now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}
