package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/examples/system/user"
	patgw "github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/rpc"
	"github.com/patbus/patbus/services"
)

// system is the whole reference system in one process: the user, account
// and config services and the gateway, on one broker and one database.
type system struct {
	s      *settings
	b      bus.Broker
	where  string // the MongoDB server, for people
	stopDB func()
	users  *user.Module
	svcs   []*services.Service // user, account, config
	rpc    *rpc.Server
	client *services.Service // the gateway's
	gw     *patgw.Gateway
}

// startSystem opens the broker and the database of s, and starts every
// service and the gateway's client on them; the gateway, built but not
// serving, tells gatewayAddr in the configuration. On failure it closes
// what it opened.
func startSystem(ctx context.Context, s *settings, g *gatewayFlags, gatewayAddr, configFile string, userOpts ...user.Option) (_ *system, err error) {
	routes, err := g.routeMap()
	if err != nil {
		return nil, err
	}
	doc, err := configDocument(s, configFile, gatewayAddr, routes)
	if err != nil {
		return nil, err
	}
	sys := &system{s: s, stopDB: func() {}}
	defer func() {
		if err != nil {
			sys.close()
		}
	}()
	if sys.b, err = s.openBroker(ctx, "system"); err != nil {
		return nil, err
	}
	db, where, stop, err := s.openStore(ctx)
	if err != nil {
		return nil, err
	}
	sys.where, sys.stopDB = where, stop

	userSvc, um, err := newUser(ctx, s, sys.b, db, userOpts...)
	if err != nil {
		return nil, err
	}
	sys.users = um
	sys.svcs = append(sys.svcs, userSvc)
	accountSvc, srv, err := newAccount(ctx, s, sys.b, um.Collection())
	if err != nil {
		return nil, err
	}
	sys.svcs = append(sys.svcs, accountSvc)
	sys.rpc = srv
	configSvc, err := newConfig(s, sys.b, doc)
	if err != nil {
		return nil, err
	}
	sys.svcs = append(sys.svcs, configSvc)
	if sys.client, sys.gw, err = newGateway(s, sys.b, g, routes); err != nil {
		return nil, err
	}
	for _, svc := range sys.svcs {
		if err := svc.Ready(ctx); err != nil {
			return nil, err
		}
	}
	if err := sys.rpc.Start(ctx); err != nil {
		return nil, err
	}
	if err := sys.client.Ready(ctx); err != nil {
		return nil, err
	}
	// The gateway's client learns the catalog from the bus: wait until it
	// knows every pattern its routes act on.
	for _, p := range []string{user.PatternList, user.PatternLogin, "$$target:config-server"} {
		if err := sys.client.WaitFor(ctx, p); err != nil {
			return nil, fmt.Errorf("system: the gateway does not see %s: %w", p, err)
		}
	}
	return sys, nil
}

// shutdown drains the system after the gateway has stopped serving: the
// services finish what is in flight (services.DefaultDrainTimeout), then
// the client, the broker and the database close.
func (sys *system) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), services.DefaultDrainTimeout)
	defer cancel()
	var errs []error
	if sys.rpc != nil {
		if err := sys.rpc.Shutdown(ctx); err != nil {
			errs = append(errs, err, sys.rpc.Close())
		}
		sys.rpc = nil
	}
	for _, svc := range sys.svcs {
		if err := svc.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("system: drain %s: %w", svc.Name(), err))
		}
	}
	sys.close()
	return errors.Join(errs...)
}

// close closes everything at once.
func (sys *system) close() {
	if sys.gw != nil {
		_ = sys.gw.Close()
	}
	if sys.rpc != nil {
		_ = sys.rpc.Close()
	}
	for _, svc := range sys.svcs {
		_ = svc.Close()
	}
	if sys.client != nil {
		_ = sys.client.Close()
	}
	if sys.b != nil {
		_ = sys.b.Close()
	}
	sys.stopDB()
}
