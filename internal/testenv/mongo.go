package testenv

import "testing"

// MongoURI returns MONGODB_URI, the connection string of a MongoDB (or
// MongoDB-compatible) server, or skips (fails in CI) when it is unset.
// scripts/mongodb.sh starts one and prints the variable.
func MongoURI(t testing.TB) string {
	t.Helper()
	return need(t, "MONGODB_URI", "MongoDB")
}
