// Package bench holds the benchmarks that compare patbus with other Go
// frameworks in the same run (Watermill's AMQP publisher, for now). They
// live in the integration module so that those frameworks never enter the
// library's module graph:
//
//	cd integration && go test -run '^$' -bench . -benchtime 1x -count 3 ./bench
package bench
