// Package wire holds what every patbus message carries on the broker,
// whichever primitive sent it: header names, the content type, the tx id
// that ties a chain of acts together, and the W3C traceparent.
//
// The wire format is documented for producers in other languages in
// WIRE.md at the root of the repository.
package wire
