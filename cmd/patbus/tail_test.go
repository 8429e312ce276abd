package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/internal/testenv"
)

// tailProc is a running "patbus tail".
type tailProc struct {
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line
	stderr *lockedBuffer
	queue  string // the tap queue, from its first stderr line
}

var tapRE = regexp.MustCompile(`through (\S+)`)

// startTail starts "patbus tail" with args and waits until its tap is
// bound (its first stderr line names the tap queue).
func startTail(t *testing.T, env []string, args ...string) *tailProc {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"tail"}, args...)...)
	cmd.Env = env
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &tailProc{cmd: cmd, lines: make(chan string, 1000), stderr: &lockedBuffer{}}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(errPipe)
		n := 0
		for sc.Scan() {
			if n == 0 {
				first <- sc.Text()
			}
			n++
			p.stderr.WriteString(sc.Text() + "\n")
		}
		close(first)
	}()
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	select {
	case l, ok := <-first:
		m := tapRE.FindStringSubmatch(l)
		if !ok || m == nil {
			t.Fatalf("tail did not start: %q %s", l, p.stderr.String())
		}
		p.queue = m[1]
	case <-time.After(20 * time.Second):
		t.Fatal("tail did not start within 20s")
	}
	return p
}

// next returns the next stdout line, failing after d.
func (p *tailProc) next(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatalf("tail ended: %s", p.stderr.String())
		}
		return l
	case <-time.After(d):
		t.Fatalf("no line from tail within %s; stderr: %s", d, p.stderr.String())
	}
	return ""
}

// tail sees the acts and the events that other processes make, with their
// kind, pattern, service and tx, and only those its pattern selects.
func TestTailSeesActsAndEvents(t *testing.T) {
	startServices(t)
	env := testEnv(t)
	all := startTail(t, env, "--json")
	onlyB := startTail(t, env, "--json", "role:b")
	globbed := startTail(t, env, "--json", "role:b,cmd:fa*")
	tx := "0000000000000000000000000000a0b1"
	if r := patbusCmd(t, env, nil, "act", "--tx", tx, "role:b,cmd:echo", "x:1"); r.code != 0 {
		t.Fatalf("act: %d %s", r.code, r.stderr)
	}
	if r := patbusCmd(t, env, nil, "act", "--tx", tx, "role:b,cmd:fail"); r.code != 1 {
		t.Fatalf("act: %d %s", r.code, r.stderr)
	}
	if r := patbusCmd(t, env, nil, "emit", "--tx", tx, "role:clitest,evt:seen,run:"+runID, "id:5"); r.code != 0 {
		t.Fatalf("emit: %d %s", r.code, r.stderr)
	}
	want := []tailLine{
		{Kind: "act", Pattern: "cmd:echo,role:b", Service: "beta", Version: "1.0.0", Tx: tx, Exchange: testAct},
		{Kind: "act", Pattern: "cmd:fail,role:b", Service: "beta", Version: "1.0.0", Tx: tx, Exchange: testAct},
		{Kind: "event", Pattern: "evt:seen,role:clitest,run:" + runID, Tx: tx, Exchange: "patbus.events"},
	}
	check := func(p *tailProc, want []tailLine) {
		t.Helper()
		for _, w := range want {
			var got tailLine
			for {
				l := p.next(t, 10*time.Second)
				if err := json.Unmarshal([]byte(l), &got); err != nil {
					t.Fatalf("not JSON: %q", l)
				}
				if got.Tx == tx {
					break // other traffic on a shared broker is not ours
				}
			}
			if got.Kind != w.Kind || got.Pattern != w.Pattern || got.Service != w.Service || got.Version != w.Version || got.Exchange != w.Exchange {
				t.Errorf("got %+v, want %+v", got, w)
			}
			if got.Body == nil {
				t.Errorf("no body in %+v", got)
			}
		}
	}
	check(all, want)
	check(onlyB, want[:2])
	check(globbed, want[1:2])

	// A human's line: time, kind, pattern, service@version, tx, body.
	human := startTail(t, env, "--quiet", "role:b")
	if r := patbusCmd(t, env, nil, "act", "--tx", tx, "role:b,cmd:echo", "x:2"); r.code != 0 {
		t.Fatalf("act: %d %s", r.code, r.stderr)
	}
	line := human.next(t, 10*time.Second)
	if !regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} act +cmd:echo,role:b beta@1\.0\.0 tx ` + tx + ` \{"cmd":"echo","role":"b","x":2\}$`).MatchString(line) {
		t.Errorf("line %q", line)
	}
}

// --tx follows one request across services: the act on alpha, the act
// alpha makes on beta inside its handler, the event alpha emits, all with
// the tx of the first act, and nothing else.
func TestTailTxChain(t *testing.T) {
	startServices(t)
	env := testEnv(t)
	tx := "0000000000000000000000000000c4a1"
	p := startTail(t, env, "--json", "--tx", tx)
	// Noise in another tx.
	if r := patbusCmd(t, env, nil, "act", "role:a,cmd:hop"); r.code != 0 {
		t.Fatalf("act: %d %s", r.code, r.stderr)
	}
	if r := patbusCmd(t, env, nil, "act", "--tx", tx, "role:a,cmd:hop"); r.code != 0 {
		t.Fatalf("act: %d %s", r.code, r.stderr)
	}
	got := map[string]tailLine{}
	for len(got) < 3 {
		var l tailLine
		s := p.next(t, 10*time.Second)
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("not JSON: %q", s)
		}
		if l.Tx != tx {
			t.Fatalf("a message of another tx: %s", s)
		}
		got[l.Kind+" "+l.Pattern] = l
	}
	for key, svc := range map[string]string{
		"act cmd:hop,role:a":                   "alpha",
		"act cmd:echo,role:b":                  "beta",
		"event evt:hopped,role:a,run:" + runID: "",
	} {
		l, ok := got[key]
		if !ok {
			t.Errorf("no %s in %v", key, got)
		} else if l.Service != svc {
			t.Errorf("%s: service %q, want %q", key, l.Service, svc)
		}
	}
}

// Ctrl-C leaves no queue behind, and a tap that falls behind drops its
// oldest and says so.
func TestTailStopsCleanAndDrops(t *testing.T) {
	env := testEnv(t)
	b := broker(t)
	qi := b.(bus.QueueInspector)
	p := startTail(t, env, "--json", "--buffer", "10", "role:clitest,evt:flood,run:"+runID)
	// Nobody reads tail's stdout for a while: once the pipe is full tail
	// stops taking messages and its tap fills up.
	lines := make([]string, 0, 3000)
	for i := 0; i < 3000; i++ {
		lines = append(lines, `{"i":`+itoa(i)+`,"pad":"`+strings.Repeat("x", 200)+`"}`)
	}
	if r := patbusCmd(t, env, strings.NewReader(strings.Join(lines, "\n")), "emit", "role:clitest,evt:flood,run:"+runID, "-"); r.code != 0 {
		t.Fatalf("emit: %d %s", r.code, r.stderr)
	}
	dropped := int64(0)
	deadline := time.After(20 * time.Second)
	for dropped == 0 {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatal("tail ended")
			}
			var tl tailLine
			if json.Unmarshal([]byte(l), &tl) == nil && tl.Kind == "dropped" {
				dropped = tl.Dropped
			}
		case <-deadline:
			t.Fatal("tail never said it dropped messages")
		}
	}
	// The tap is exclusive: another connection is told it is locked,
	// which says it exists.
	if _, err := qi.InspectQueue(context.Background(), p.queue); errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("the tap queue %s while tail runs: %v", p.queue, err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range p.lines {
		}
	}()
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("tail after Ctrl-C: %v (want exit 0)", err)
	}
	waitFor(t, 5*time.Second, "the tap queue gone", func() bool {
		_, err := qi.InspectQueue(context.Background(), p.queue)
		return errors.Is(err, bus.ErrNotFound)
	})
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// lockedBuffer is a strings.Builder safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// With RabbitMQ's firehose on, --firehose shows the replies too, tied to
// their acts' tx, with the answering service and the error status.
func TestTailFirehose(t *testing.T) {
	startServices(t)
	env := testEnv(t)
	u, err := url.Parse(envValue(env, "PATBUS_AMQP_URL"))
	if err != nil {
		t.Fatal(err)
	}
	vhost := strings.TrimPrefix(u.Path, "/")
	if vhost == "" {
		vhost = "/"
	}
	if out, err := exec.Command("rabbitmqctl", "trace_on", "-p", vhost).CombinedOutput(); err != nil {
		// The firehose can only be turned on by the broker's operator.
		if !testenv.Required() {
			t.Skipf("rabbitmqctl trace_on -p %s: %v (the test needs the broker's own rabbitmqctl)", vhost, err)
		}
		t.Fatalf("rabbitmqctl trace_on -p %s (the test needs the broker's own rabbitmqctl): %v\n%s", vhost, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("rabbitmqctl", "trace_off", "-p", vhost).Run() })
	tx := "0000000000000000000000000000f1e2"
	p := startTail(t, env, "--json", "--firehose", "--tx", tx)
	if r := patbusCmd(t, env, nil, "act", "--tx", tx, "role:a,cmd:hop"); r.code != 0 {
		t.Fatalf("act: %d %s", r.code, r.stderr)
	}
	if r := patbusCmd(t, env, nil, "act", "--tx", tx, "role:b,cmd:fail"); r.code != 1 {
		t.Fatalf("act: %d %s", r.code, r.stderr)
	}
	got := map[string]tailLine{}
	for len(got) < 7 {
		var l tailLine
		s := p.next(t, 10*time.Second)
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("not JSON: %q", s)
		}
		got[l.Kind+" "+l.Pattern] = l
	}
	for key, want := range map[string]string{
		"act cmd:hop,role:a":                   "alpha",
		"reply cmd:hop,role:a":                 "alpha ok",
		"act cmd:echo,role:b":                  "beta",
		"reply cmd:echo,role:b":                "beta ok",
		"event evt:hopped,role:a,run:" + runID: "",
		"act cmd:fail,role:b":                  "beta",
		"reply cmd:fail,role:b":                "beta error",
	} {
		l, ok := got[key]
		if !ok {
			t.Errorf("no %s in %v", key, got)
			continue
		}
		if s := strings.TrimSpace(l.Service + " " + l.Status); s != want {
			t.Errorf("%s: %q, want %q", key, s, want)
		}
	}
}
