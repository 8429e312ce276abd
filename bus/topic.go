package bus

import "strings"

// splitTopic splits a routing or binding key into its words, as RabbitMQ
// does: the empty key has no words; "a..b" has an empty middle word.
func splitTopic(key string) []string {
	if key == "" {
		return nil
	}
	return strings.Split(key, ".")
}

// topicMatch reports whether the words of a routing key match the words of
// a topic binding key, where "*" matches exactly one word and "#" zero or
// more. It runs in O(len(pattern) * len(key)) time.
func topicMatch(pattern, key []string) bool {
	// reach[j] is true when pattern[:i] can match key[:j].
	var buf [32]bool
	var reach []bool
	if len(key)+1 <= len(buf) {
		reach = buf[:len(key)+1]
	} else {
		reach = make([]bool, len(key)+1)
	}
	reach[0] = true
	for _, w := range pattern {
		switch w {
		case "#":
			// Zero or more words: once reachable, every later position is.
			for j := 1; j <= len(key); j++ {
				reach[j] = reach[j] || reach[j-1]
			}
		default:
			for j := len(key); j >= 1; j-- {
				reach[j] = reach[j-1] && (w == "*" || w == key[j-1])
			}
			reach[0] = false
		}
	}
	return reach[len(key)]
}
