// Package systest gives the reference system's tests their MongoDB: the
// server MONGODB_URI names (scripts/services.sh starts one), or else an
// embedded FerretDB that the test starts for itself. The embedded server
// is the system's own default (package embedmongo), a real MongoDB-wire
// server, so these tests never skip for want of MongoDB.
package systest
