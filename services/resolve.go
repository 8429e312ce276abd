package services

import (
	"fmt"
	"sort"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/patterns"
)

// snapshot is an immutable view of what the service can route, swapped
// atomically on every change, so that acts resolve without locks.
type snapshot struct {
	// local holds the local actions, for priors and for acts from the
	// broker whose pattern header names no local action exactly.
	local *patterns.Router[*action]
	// exact maps canonical patterns to local actions.
	exact map[string]*action
	// routes is the one router of local actions and remote patterns that
	// acts resolve against (DESIGN.md section 4).
	routes *patterns.Router[*route]
	// keys holds every key that a pattern of routes names: a message key
	// outside it cannot change where an act goes (typed fast path).
	keys map[string]bool
}

// route is one pattern with whoever serves it.
type route struct {
	pattern patterns.Pattern
	canon   string
	local   *action    // the local action, or nil
	remote  []provider // newest version first
	// critical names the versions (service@version) that serve the
	// pattern but have no instance that Consul does not know as critical:
	// they are not routed to, and an act that finds nobody else says so.
	critical []string
}

// provider is one service version that serves a route.
type provider struct {
	service, version string
	ver              version
	key              string // routing key with $$target and $$version
	queue            string // the version's act queue, "" if not announced
	target           string // service@version, for errors and logs
}

// rebuildLocked builds a fresh snapshot from the local actions and the
// catalog and wakes the waiters. Patterns go into the routers in the order
// they were first seen, which decides only among globs on one key.
func (s *Service) rebuildLocked() {
	type entry struct {
		r    *route
		seq  uint64
		pv   map[string]provider
		sick map[string]bool
	}
	entries := map[string]*entry{}
	get := func(p patterns.Pattern, canon string) *entry {
		e, ok := entries[canon]
		if !ok {
			e = &entry{r: &route{pattern: p, canon: canon}, seq: s.cat.seen(canon), pv: map[string]provider{}, sick: map[string]bool{}}
			entries[canon] = e
		}
		return e
	}
	snap := &snapshot{exact: make(map[string]*action, len(s.locals)), local: patterns.NewRouter[*action]()}
	for _, a := range s.locals {
		snap.local.Add(a.pattern, a)
		snap.exact[a.canon] = a
		get(a.pattern, a.canon).r.local = a
	}
	for _, in := range s.cat.instances {
		critical := s.healthOfLocked(in) == HealthCritical
		for i, p := range in.patterns {
			e := get(p, in.canon[i])
			id := in.service + "@" + in.version
			if critical {
				e.sick[id] = true
				continue
			}
			if _, ok := e.pv[id]; ok {
				continue
			}
			key, err := targetKey(p, in.service, in.version)
			if err != nil {
				continue // too long to route; the announcing service could not bind it either
			}
			queue := in.queue
			if len(queue) > bus.MaxNameLen {
				queue = "" // no AMQP queue has such a name: route by key
			}
			e.pv[id] = provider{service: in.service, version: in.version, ver: in.ver, key: key, queue: queue, target: id}
		}
	}
	list := make([]*entry, 0, len(entries))
	for _, e := range entries {
		for id := range e.sick {
			if _, ok := e.pv[id]; !ok {
				e.r.critical = append(e.r.critical, id)
			}
		}
		sort.Strings(e.r.critical)
		for _, p := range e.pv {
			e.r.remote = append(e.r.remote, p)
		}
		sort.Slice(e.r.remote, func(i, j int) bool {
			a, b := e.r.remote[i], e.r.remote[j]
			if c := a.ver.compare(b.ver); c != 0 {
				return c > 0
			}
			if a.version != b.version {
				return a.version > b.version
			}
			return a.service < b.service
		})
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].seq < list[j].seq })
	if len(s.cat.order) > 2*len(entries)+64 {
		// Patterns no instance announces any more: forget them, or a
		// catalog that sees patterns come and go grows for ever.
		for canon := range s.cat.order {
			if _, ok := entries[canon]; !ok {
				delete(s.cat.order, canon)
			}
		}
	}
	snap.routes = patterns.NewRouter[*route]()
	snap.keys = map[string]bool{}
	for _, e := range list {
		snap.routes.Add(e.r.pattern, e.r)
		for _, pr := range e.r.pattern.Pairs() {
			snap.keys[pr.Key] = true
		}
	}
	s.snap.Store(snap)
	close(s.changed)
	s.changed = make(chan struct{})
}

// resolution is where an act goes: a local action, a remote provider, or
// nowhere.
type resolution struct {
	route  *route
	local  *action
	remote *provider
}

// resolve finds where msg goes. The message matches by the Patrun rules as
// it is, $$target and $$version included (so a pattern may name them). The
// message's $$target and $$version then filter who may serve the winning
// pattern ($$version an exact version or a semver range): the local action
// (preferred unless the service is broker-only), else the newest version
// among the remote providers that the pins allow; without a $$version, a
// release before any prerelease. When the pins leave
// nobody for the winning pattern, the other patterns that match the message
// are tried, the one with the most pairs first.
func (s *Service) resolve(snap *snapshot, msg map[string]any) (resolution, bool) {
	target, raw := pin(msg[keyTarget]), pin(msg[keyVersion])
	version, err := s.pins.get(raw)
	if err != nil {
		return resolution{}, false // Act reports it before it resolves
	}
	if r, ok := snap.routes.Find(msg); ok {
		if res, ok := s.choose(r, target, version); ok {
			return res, true
		}
	}
	if target == "" && version == nil {
		return resolution{}, false
	}
	all := snap.routes.Collect(msg)
	sort.SliceStable(all, func(i, j int) bool { return all[i].pattern.Len() > all[j].pattern.Len() })
	for _, r := range all {
		if res, ok := s.choose(r, target, version); ok {
			return res, true
		}
	}
	return resolution{}, false
}

func (s *Service) choose(r *route, target string, version *versionPin) (resolution, bool) {
	localOK := r.local != nil && (target == "" || target == s.name) && version.allows(s.version, s.ver)
	if localOK && s.cfg.preferLocal {
		return resolution{route: r, local: r.local}, true
	}
	// Newest first; an unpinned act goes to a prerelease only when no
	// release serves the pattern (a canary gets the traffic pinned to it).
	var pre *provider
	for i := range r.remote {
		p := &r.remote[i]
		if (target == "" || target == p.service) && version.allows(p.version, p.ver) {
			if version == nil && p.ver.prerelease() {
				if pre == nil {
					pre = p
				}
				continue
			}
			return resolution{route: r, remote: p}, true
		}
	}
	if pre != nil {
		return resolution{route: r, remote: pre}, true
	}
	if localOK {
		return resolution{route: r, local: r.local}, true
	}
	return resolution{}, false
}

// pin turns a $$target or $$version value into a string.
func pin(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	default:
		return fmt.Sprint(x)
	}
}

// criticalFor names the versions that would serve msg but are critical in
// Consul, for the error of an act that found nobody healthy.
func (s *Service) criticalFor(snap *snapshot, msg map[string]any) []string {
	var out []string
	for _, r := range snap.routes.Collect(msg) {
		out = append(out, r.critical...)
	}
	return out
}
