package main

import (
	"context"
	"time"

	"github.com/patbus/patbus/services"
)

// catalogSettle is how long a fresh client listens for the answers to its
// discover before it takes the catalog as complete: every live instance
// answers at once, so a fraction of a second is plenty on one network.
const catalogSettle = 700 * time.Millisecond

// loadCatalog starts the client (it joins the registry and asks every
// instance to announce itself) and returns the catalog once the answers
// stopped changing it, after at least quiet and at most wait.
func loadCatalog(ctx context.Context, cl *services.Service, wait time.Duration) ([]services.CatalogEntry, error) {
	if err := cl.Ready(ctx); err != nil {
		return nil, err
	}
	quiet := 250 * time.Millisecond
	deadline := time.Now().Add(wait)
	last := signature(cl.Catalog())
	changed := time.Now()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return cl.Catalog(), ctx.Err()
		case <-t.C:
		}
		if s := signature(cl.Catalog()); s != last {
			last, changed = s, time.Now()
		} else if time.Since(changed) >= quiet && last != "" {
			break
		}
	}
	return cl.Catalog(), nil
}

// signature summarises what a catalog holds, to notice a change.
func signature(cat []services.CatalogEntry) string {
	var s []byte
	for _, e := range cat {
		if e.Service == services.ClientName && e.Version == services.ClientVersion {
			continue
		}
		s = append(s, e.Service...)
		s = append(s, '@')
		s = append(s, e.Version...)
		for _, in := range e.Instances {
			s = append(s, ' ')
			s = append(s, in.ID...)
		}
		for _, p := range e.Patterns {
			s = append(s, ' ')
			s = append(s, p...)
		}
		s = append(s, '\n')
	}
	return string(s)
}

// others drops the client itself from a catalog.
func others(cat []services.CatalogEntry) []services.CatalogEntry {
	out := cat[:0:0]
	for _, e := range cat {
		if e.Service == services.ClientName && e.Version == services.ClientVersion && len(e.Patterns) == 0 {
			continue
		}
		out = append(out, e)
	}
	return out
}

// actQueue is the act queue of a service version: services name it
// "<act exchange>.<name>@<version>" and announce it in the catalog.
func (a *app) actQueue(e services.CatalogEntry) string {
	return a.opts.act + "." + e.Service + "@" + e.Version
}
