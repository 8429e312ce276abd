package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/patbus/patbus/services"
)

func servicesCommand() command {
	return command{
		name:    "services",
		summary: "list the services in the catalog",
		run:     runServices,
		usage: `Usage: patbus services [flags]

Lists the catalog as the bus knows it: every service version with a live
instance, its instances, the age of their last heartbeat, its patterns and
its act queue. It joins the registry exchange as a client that serves
nothing, asks every instance to announce itself, and prints what arrived
within --wait. With --consul (or CONSUL_HTTP_ADDR) it adds each version's
and instance's health in Consul; versions Consul knows as critical are not
routed to.

Examples:
  patbus services
  patbus services --consul 127.0.0.1:8500
  patbus services --json | jq -r 'select(.health=="passing") | .service'`,
	}
}

// serviceJSON is one service version in --json output.
type serviceJSON struct {
	Service     string         `json:"service"`
	Version     string         `json:"version"`
	Queue       string         `json:"queue"`
	Health      string         `json:"health,omitempty"`
	HealthStale bool           `json:"health_stale,omitempty"`
	Patterns    []string       `json:"patterns"`
	Instances   []instanceJSON `json:"instances"`
}

type instanceJSON struct {
	ID       string    `json:"id"`
	LastSeen time.Time `json:"last_seen"`
	AgeMS    int64     `json:"heartbeat_age_ms"`
	Health   string    `json:"health,omitempty"`
}

func runServices(a *app, ctx context.Context, args []string) int {
	c := servicesCommand()
	fs := a.flagSet(c, true)
	wait := fs.Duration("wait", 2*time.Second, "how long to wait at most for the instances' announcements")
	a.consulFlag(fs)
	pos, code, ok := a.parse(c, fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return a.usageErr(c, "takes no arguments")
	}
	cl, closeAll, err := a.session(ctx, a.dial)
	if err != nil {
		return a.fail(c, err)
	}
	defer closeAll()
	cat, err := loadCatalog(ctx, cl, *wait)
	if err != nil {
		if ctx.Err() != nil {
			return exitInterrupted
		}
		return a.fail(c, err)
	}
	if a.opts.consul != "" {
		// Consul's view arrives on its own watch; give it a moment.
		cat = a.waitHealth(ctx, cl, cat, *wait)
	}
	cat = others(cat)
	now := time.Now()
	if a.opts.json {
		for _, e := range cat {
			s := serviceJSON{Service: e.Service, Version: e.Version, Queue: a.actQueue(e), Health: e.Health,
				HealthStale: e.HealthStale, Patterns: e.Patterns, Instances: []instanceJSON{}}
			if s.Patterns == nil {
				s.Patterns = []string{}
			}
			for _, in := range e.Instances {
				s.Instances = append(s.Instances, instanceJSON{ID: in.ID, LastSeen: in.LastSeen, AgeMS: now.Sub(in.LastSeen).Milliseconds(), Health: in.Health})
			}
			a.printJSON(s)
		}
		return exitOK
	}
	if len(cat) == 0 {
		fmt.Fprintf(a.errw, "patbus services: no service announced itself on %s within %s\n", a.opts.registry, *wait)
		return exitOK
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	header := "SERVICE\tVERSION\tINSTANCES\tHEARTBEAT\tPATTERNS"
	if a.opts.consul != "" {
		header = "SERVICE\tVERSION\tINSTANCES\tHEARTBEAT\tHEALTH\tPATTERNS"
	}
	fmt.Fprintln(tw, header)
	for _, e := range cat {
		age := time.Duration(0)
		for i, in := range e.Instances {
			if d := now.Sub(in.LastSeen); i == 0 || d > age {
				age = d
			}
		}
		pats := e.Patterns
		if len(pats) == 0 {
			pats = []string{"-"}
		}
		health := ""
		if a.opts.consul != "" {
			health = e.Health
			if health == "" {
				health = "-"
			}
			if e.HealthStale {
				health += " (stale)"
			}
			health += "\t"
		}
		// No colour in the table: tabwriter counts the escape codes as
		// text and the columns would not line up.
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s ago\t%s%s\n", e.Service, e.Version, len(e.Instances), age.Round(100*time.Millisecond), health, pats[0])
		for _, p := range pats[1:] {
			fmt.Fprintf(tw, "\t\t\t\t%s%s\n", strings.Repeat("\t", boolInt(a.opts.consul != "")), p)
		}
	}
	_ = tw.Flush()
	return exitOK
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// waitHealth waits, at most wait, until Consul's health is known for every
// version of the catalog, and returns the catalog then.
func (a *app) waitHealth(ctx context.Context, cl *services.Service, cat []services.CatalogEntry, wait time.Duration) []services.CatalogEntry {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		known := true
		for _, e := range others(cat) {
			if e.Health == "" && !e.HealthStale {
				known = false
			}
		}
		if known {
			return cat
		}
		select {
		case <-ctx.Done():
			return cat
		case <-time.After(50 * time.Millisecond):
		}
		cat = cl.Catalog()
	}
	return cat
}
