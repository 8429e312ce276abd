package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/patbus/patbus/patterns"
	"github.com/patbus/patbus/services"
)

func explainCommand() command {
	return command{
		name:    "explain",
		summary: "say which pattern wins for a message, and why",
		run:     runExplain,
		usage: `Usage: patbus explain [flags] MESSAGE

Resolves MESSAGE against the live catalog by Patrun's rules, as a caller
would, without acting: the pattern that wins, the walk that chose it (the
keys in sorted order, what each matched: exact, glob, skip, backtrack), the
service versions that serve it (the newest healthy one answers; $$target
and $$version in the message pin them), and every candidate pattern the
message matches, in the order Patrun's walk meets them.

MESSAGE is a JSON object or pairs written like a pattern; "-" reads a JSON
object from stdin.

Examples:
  patbus explain role:user,cmd:login,user:asd
  patbus explain '{"role":"user","cmd":"login","$$version":"1.0.0"}'
  patbus explain --json a:1,b:1,c:1 | jq .winner`,
	}
}

// served is who serves one pattern.
type served struct {
	Pattern  patterns.Pattern
	Versions []string // service@version, in catalog order
	entries  []services.CatalogEntry
}

type explainJSON struct {
	Message    json.RawMessage `json:"message"`
	Found      bool            `json:"found"`
	Winner     string          `json:"winner,omitempty"`
	ChosenBy   string          `json:"answered_by,omitempty"`
	ServedBy   []string        `json:"served_by,omitempty"`
	Steps      []stepJSON      `json:"steps"`
	Candidates []candidateJSON `json:"candidates"`
}

type stepJSON struct {
	Key     string `json:"key"`
	Value   string `json:"value,omitempty"`
	Present bool   `json:"present"`
	Take    string `json:"take"`
	Glob    string `json:"glob,omitempty"`
	Pattern string `json:"pattern,omitempty"`
}

type candidateJSON struct {
	Pattern  string   `json:"pattern"`
	ServedBy []string `json:"served_by"`
	Wins     bool     `json:"wins,omitempty"`
}

func runExplain(a *app, ctx context.Context, args []string) int {
	c := explainCommand()
	fs := a.flagSet(c, true)
	wait := fs.Duration("wait", 2*time.Second, "how long to wait at most for the instances' announcements")
	a.consulFlag(fs)
	pos, code, ok := a.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return a.usageErr(c, "want one MESSAGE, got %d arguments", len(pos))
	}
	raw, err := a.readInput(pos[0])
	if err != nil {
		return a.fail(c, err)
	}
	if raw == nil {
		raw = []byte("{}")
	}
	msg, err := decodeMessage(raw)
	if err != nil {
		return a.fail(c, err)
	}
	cl, closeAll, err := a.session(ctx, a.dial)
	if err != nil {
		return a.fail(c, err)
	}
	defer closeAll()
	cat, err := loadCatalog(ctx, cl, *wait)
	if err != nil {
		return a.fail(c, err)
	}
	if a.opts.consul != "" {
		cat = a.waitHealth(ctx, cl, cat, *wait)
	}
	a.explain(msg, raw, others(cat))
	return exitOK
}

// decodeMessage decodes a JSON object keeping numbers exact.
func decodeMessage(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, jsonError("message", raw, err)
	}
	return m, nil
}

// routerOf builds a router of the catalog's patterns.
func routerOf(cat []services.CatalogEntry) *patterns.Router[*served] {
	r := patterns.NewRouter[*served]()
	for _, e := range cat {
		for _, ps := range e.Patterns {
			p, err := patterns.Parse(ps)
			if err != nil {
				continue
			}
			s, ok := r.Get(p)
			if !ok {
				s = &served{Pattern: p}
				r.Add(p, s)
			}
			s.Versions = append(s.Versions, e.Service+"@"+e.Version)
			s.entries = append(s.entries, e)
		}
	}
	return r
}

// answeredBy is the service version a caller would choose among those
// serving one pattern: those the message's pins allow and Consul does not
// know as critical, the newest by semantic version.
func answeredBy(s *served, msg map[string]any) string {
	target, _ := msg["$$target"].(string)
	version, _ := msg["$$version"].(string)
	best := ""
	var bestV *semver.Version
	for _, e := range s.entries {
		if (target != "" && e.Service != target) || (version != "" && e.Version != version) || e.Health == services.HealthCritical {
			continue
		}
		v, err := semver.NewVersion(e.Version)
		if err != nil {
			continue
		}
		if bestV == nil || v.GreaterThan(bestV) {
			best, bestV = e.Service+"@"+e.Version, v
		}
	}
	return best
}

func (a *app) explain(msg map[string]any, raw []byte, cat []services.CatalogEntry) {
	r := routerOf(cat)
	ex := r.Explain(msg)
	cands := r.Collect(msg)
	var winner *served
	if ex.Found {
		winner, _ = r.Get(ex.Pattern)
	}
	chosen := ""
	if winner != nil {
		chosen = answeredBy(winner, msg)
	}
	if a.opts.json {
		var buf bytes.Buffer
		_ = json.Compact(&buf, raw)
		out := explainJSON{Message: buf.Bytes(), Found: ex.Found, Steps: []stepJSON{}, Candidates: []candidateJSON{}}
		if winner != nil {
			out.Winner, out.ServedBy, out.ChosenBy = winner.Pattern.String(), winner.Versions, chosen
		}
		for _, st := range ex.Steps {
			sj := stepJSON{Key: st.Key, Value: st.Value, Present: st.Present, Take: st.Take.String(), Glob: st.Glob}
			if st.HasAction {
				sj.Pattern = st.Pattern.String()
			}
			out.Steps = append(out.Steps, sj)
		}
		for _, s := range cands {
			out.Candidates = append(out.Candidates, candidateJSON{Pattern: s.Pattern.String(), ServedBy: s.Versions, Wins: winner == s})
		}
		a.printJSON(out)
		return
	}
	var buf bytes.Buffer
	_ = json.Compact(&buf, raw)
	fmt.Fprintf(a.out, "message  %s\n", buf.String())
	if !ex.Found {
		fmt.Fprintf(a.out, "winner   %s\n", a.paint(colRed, fmt.Sprintf("none: no pattern of the catalog matches (%d services)", len(cat))))
	} else {
		fmt.Fprintf(a.out, "winner   %s\n", a.paint(colBold, winner.Pattern.String()))
		if chosen != "" {
			fmt.Fprintf(a.out, "answers  %s (the newest of %s that the pins and health allow)\n", a.paint(colGreen, chosen), strings.Join(winner.Versions, ", "))
		} else {
			fmt.Fprintf(a.out, "answers  %s\n", a.paint(colRed, "nobody: the pins or health rule out "+strings.Join(winner.Versions, ", ")+"; a caller tries the other candidates, most pairs first"))
		}
	}
	fmt.Fprintln(a.out, "\nwalk (keys in sorted order):")
	for _, line := range strings.Split(strings.TrimRight(ex.String(), "\n"), "\n")[1:] {
		fmt.Fprintf(a.out, "  %s\n", strings.TrimSpace(line))
	}
	fmt.Fprintln(a.out, "\ncandidates (in the order the walk meets them):")
	if len(cands) == 0 {
		fmt.Fprintln(a.out, "  none")
	}
	for i, s := range cands {
		mark := ""
		if s == winner {
			mark = a.paint(colGreen, "  <- wins")
		}
		fmt.Fprintf(a.out, "  %d. %s  %s%s\n", i+1, s.Pattern.String(), strings.Join(s.Versions, ", "), mark)
	}
}
