//go:build tools

// Package tools pins the Consul server that the tests run as a dev agent.
// Nothing imports it: it exists so that go.mod and go.sum in this directory
// fix github.com/hashicorp/consul at one version, which scripts/consul.sh
// builds with `go build github.com/hashicorp/consul` and caches by version.
// It is a module of its own so that Consul's dependencies stay out of the
// library's module graph.
package tools

import _ "github.com/hashicorp/consul"
