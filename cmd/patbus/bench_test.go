package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/patbus/patbus/internal/baseline"
	"github.com/patbus/patbus/internal/testenv"
)

// BenchmarkEnqueue runs "patbus enqueue QUEUE - < file" over a file of
// 100,000 JSON lines next to the plain amqp091-go producer of the
// work-queue tutorial with the same confirm window (256), in the same run,
// one after the other on the same queue, emptied between runs:
//
//   - cli: the command end to end, process start and connection included;
//   - cli-run: the command's own rate, from its first line read to its
//     last confirm (what --json reports);
//   - cli-bare: the command with --bare, sending the tutorial's wire;
//   - plain: the tutorial's producer, persistent messages, bare;
//   - plainwire: the same producer sending a work item's wire (mandatory,
//     a UUID message id, a timestamp; no headers, as the command's items
//     start no chain), which costs the broker more: the message id, the
//     item's dedup key, most of all.
//
// Run it with -benchtime 1x -count 6 and compare medians: the machine is
// shared and the broker's speed varies from one second to the next.
// benchRound counts BenchmarkEnqueue's iterations across -count runs.
var benchRound int

func BenchmarkEnqueue(b *testing.B) {
	const n = 100000
	const window = 256
	url := testenv.AMQPURL(b)
	env := append(os.Environ(), "PATBUS_AMQP_URL="+url)
	queue := "clitest-" + runID + ".bench"
	if err := baseline.DeclareWorkQueue(url, queue); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = baseline.DeleteQueue(url, queue) }()
	var lines bytes.Buffer
	for i := 0; i < n; i++ {
		lines.WriteString(`{"image":"img-` + itoa(i) + `.png","width":128,"height":128,"format":"webp"}` + "\n")
	}
	file := b.TempDir() + "/lines.jsonl"
	if err := os.WriteFile(file, lines.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"image":"img-12345.png","width":128,"height":128,"format":"webp"}`)
	ctx := context.Background()
	var cli, cliRun, cliBare, plain, plainWire time.Duration
	runCLI := func(bare bool) {
		f, err := os.Open(file)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		args := []string{"enqueue", "--json", "--window", itoa(window)}
		if bare {
			args = append(args, "--bare")
		}
		cmd := exec.Command(binPath, append(args, queue, "-")...)
		cmd.Env, cmd.Stdin = env, f
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		err = cmd.Run()
		if bare {
			cliBare += time.Since(start)
		} else {
			cli += time.Since(start)
		}
		if err != nil {
			b.Fatalf("patbus enqueue: %v\n%s", err, errb.String())
		}
		var s publishSummary
		if err := json.Unmarshal(out.Bytes(), &s); err != nil || s.Confirmed != n {
			b.Fatalf("patbus enqueue: %v %s", err, out.String())
		}
		if !bare {
			cliRun += time.Duration(s.Seconds * float64(time.Second))
		}
		if _, err := baseline.PurgeQueue(url, queue); err != nil {
			b.Fatal(err)
		}
	}
	runPlain := func(sameWire bool) {
		p, err := baseline.NewProducer(url, window)
		if err != nil {
			b.Fatal(err)
		}
		p.SameWire = sameWire
		start := time.Now()
		err = p.Publish(ctx, queue, n, body)
		d := time.Since(start)
		_ = p.Close()
		if err != nil {
			b.Fatal(err)
		}
		if sameWire {
			plainWire += d
		} else {
			plain += d
		}
		if _, err := baseline.PurgeQueue(url, queue); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < b.N; i++ {
		// The order turns from one iteration (and one -count) to the next,
		// so that none of the four always runs on a broker just emptied
		// or just warmed.
		steps := []func(){func() { runCLI(false) }, func() { runPlain(false) }, func() { runCLI(true) }, func() { runPlain(true) }}
		for j := range steps {
			steps[(benchRound+j)%len(steps)]()
		}
		benchRound++
	}
	rate := func(d time.Duration) float64 { return float64(n*b.N) / d.Seconds() }
	b.ReportMetric(rate(cli), "cli-msg/s")
	b.ReportMetric(rate(cliRun), "cli-run-msg/s")
	b.ReportMetric(rate(cliBare), "cli-bare-msg/s")
	b.ReportMetric(rate(plain), "plain-msg/s")
	b.ReportMetric(rate(plainWire), "plainwire-msg/s")
	b.ReportMetric(plain.Seconds()/cli.Seconds(), "cli/plain")
	b.ReportMetric(plainWire.Seconds()/cli.Seconds(), "cli/plainwire")
	b.ReportMetric(plain.Seconds()/cliBare.Seconds(), "cli-bare/plain")
	b.ReportMetric(0, "ns/op")
}
