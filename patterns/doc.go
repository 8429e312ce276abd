// Package patterns is patbus's pattern syntax, canonical form, router and
// routing keys: it decides which action answers a message, with the rules of
// Patrun, the matcher inside Seneca 3, and it turns patterns into AMQP topic
// routing keys. It depends on the standard library only.
//
// # Patterns
//
// A Pattern is a set of key:value pairs, written role:user,cmd:login (see
// Parse for the syntax; FromMap and FromPairs build patterns in code). Its
// canonical form (String) sorts the pairs by key in byte order, so two
// spellings of one pattern are Equal and print the same. Values are strings:
// the number 1 and the string "1" are the same value, as in Patrun. A value
// holding '*' or '?' is a glob. Keys ending in '$' are metadata and cannot be
// part of a pattern.
//
// # Messages
//
// A message is a map[string]any, typically a decoded JSON object. Only its
// top-level scalar values take part in matching, each compared by the string
// JavaScript's String(value) would give:
//
//   - strings as they are; bools as "true" and "false";
//   - float64 (what encoding/json decodes) as Number#toString prints it:
//     1 -> "1", 1.5 -> "1.5", 1e20 -> "100000000000000000000",
//     1e21 -> "1e+21", 1e-7 -> "1e-7", -0 -> "0", NaN -> "NaN";
//   - json.Number as the number JSON.parse would make of it, printed the same
//     way ("1.0" -> "1");
//   - integers of every size in decimal; float32 by its own shortest digits
//     (float32(0.1) -> "0.1"); named types of these kinds likewise.
//
// Keys ending in '$' never match: they are metadata (tx$, $$target, ...).
//
// Nil and nested values (maps, slices, structs, any other type) never match
// any pair: the router treats the key as absent, so a glob "*" does not match
// it either and FindExact does not count it. (Patrun would compare the
// strings "null" or "[object Object]"; a Go router should not make a pattern
// a:null or a:"[object Object]" meaningful.)
//
// # Matching
//
// Router follows Patrun's walk exactly (DESIGN.md, appendix), which every
// case of the conformance data in testdata/ checks:
//
//   - Keys are visited in sorted order. At each key the router commits to a
//     pattern branch whose value matches the message (an exact value before
//     a glob; among globs on one key, the first added) before it considers
//     patterns that leave the key out. The winner is the last action met on
//     the committed path; a skipped branch is tried only when nothing has
//     matched at all.
//   - So {a:1} beats {b:1,c:1} for the message {a:1,b:1,c:1}: more pairs win
//     only among patterns that share their leading keys.
//   - '*' matches any run of characters, '?' exactly one (a UTF-16 code
//     unit, as in JavaScript), "**" and "*?" are a literal '*' and '?' (the
//     escapes of gex, the glob library Patrun uses). A glob never matches a
//     missing key.
//   - Adding the same pattern again replaces its value; removing a pattern
//     leaves wider and narrower ones in place. The empty pattern {} catches
//     every message.
//
// Router.Explain shows which pattern won and the keys the walk took.
// Pattern.Match checks one pattern against a message with the same value
// rules (subscribers use it for glob pairs).
//
// # Routing keys
//
// Key writes a pattern as an AMQP topic routing key: its pairs in sorted
// order, each one word "key:value", joined by '.': role:user,cmd:login ->
// "cmd:login.role:user". In keys and values '.', '*', '#', '%', ':' and every
// byte outside printable ASCII (space and UTF-8 bytes included) are
// percent-encoded (%2E, upper-case hex), so a word never holds a wildcard by
// accident and splits at its one raw ':'. The empty pattern's key is "". A
// key longer than 255 bytes is ErrKeyTooLong when the key is made, never a
// broker error later. ParseKey is the inverse. BindingKey gives the binding
// of a subscription: the exact pairs with '#' before, between and after them,
// "#.cmd:login.#.role:user.#" (just "#" if there are none), which every event
// whose pattern holds those pairs reaches, as Patrun's subset matching would.
//
// # Errors
//
// Errors wrap ErrInvalidPattern or ErrKeyTooLong; Parse's are *SyntaxError
// and name the byte offset and what was expected. Nothing in this package
// panics on bad input (MustParse, for tests and examples, is the one
// documented exception).
//
// # Performance
//
// Find, FindExact and FindPattern allocate nothing for messages of string,
// bool and number values (TestFindAllocatesNothing checks it with
// testing.AllocsPerRun). Their work is a fixed number of steps per key of
// the message, whatever the number of patterns: each node keeps its exact
// values in a small open-addressing table of (hash, child) slots, a node
// with one child keeps it inline, and the child holds its own value and the
// winning action, so that a walk on a large router touches few cache lines.
// BenchmarkFind measures 3-5 pair messages against 100, 10,000 and
// 1,000,000 patterns; on the development machine (AMD EPYC, 2 cores) the
// million-pattern router is within 2x of the 100-pattern one (about 190 ns
// against 100 ns), the difference being cache and TLB misses.
package patterns
