package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/examples/system/account"
	"github.com/patbus/patbus/examples/system/config"
	sysgw "github.com/patbus/patbus/examples/system/gateway"
	"github.com/patbus/patbus/examples/system/user"
	patgw "github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/rpc"
	"github.com/patbus/patbus/services"
	"github.com/patbus/patbus/store"
)

// This file builds the parts of the system: each function makes one
// service (or the gateway) on a broker, ready to be started.

// newUser returns the user service with the user module over db.
func newUser(ctx context.Context, s *settings, b bus.Broker, db *store.DB, opts ...user.Option) (*services.Service, *user.Module, error) {
	m, err := user.New(ctx, db, append([]user.Option{user.WithLogger(s.log)}, opts...)...)
	if err != nil {
		return nil, nil, err
	}
	svc, err := services.New(userService, Version, s.serviceOptions(b)...)
	if err != nil {
		return nil, nil, err
	}
	if err := m.Register(svc); err != nil {
		_ = svc.Close()
		return nil, nil, err
	}
	return svc, m, nil
}

// newAccount returns the account service over users, and the RPC server
// of its queue (not started).
func newAccount(ctx context.Context, s *settings, b bus.Broker, users *store.Collection[user.User]) (*services.Service, *rpc.Server, error) {
	a := account.New(users)
	svc, err := services.New(accountService, Version, s.serviceOptions(b)...)
	if err != nil {
		return nil, nil, err
	}
	if err := a.Register(svc); err != nil {
		_ = svc.Close()
		return nil, nil, err
	}
	srv, err := a.Server(ctx, b, s.accountQueue(), rpc.WithLogger(s.log))
	if err != nil {
		_ = svc.Close()
		return nil, nil, err
	}
	return svc, srv, nil
}

// newConfig returns the config service, answering doc.
func newConfig(s *settings, b bus.Broker, doc config.Document) (*services.Service, error) {
	svc, err := services.New(config.ServiceName, Version, s.serviceOptions(b)...)
	if err != nil {
		return nil, err
	}
	if err := config.Register(svc, doc); err != nil {
		_ = svc.Close()
		return nil, err
	}
	return svc, nil
}

// defaultConfig is the configuration the config service hands out when
// no file is given.
func defaultConfig(s *settings, gatewayAddr string, routes []patgw.RouteSet) (config.Document, error) {
	return config.Config{
		System:       "patbus reference system",
		Database:     s.database,
		Gateway:      gatewayAddr,
		AccountQueue: s.accountQueue(),
		Routes:       routes,
	}.Encode()
}

// gatewayFlags are the flags of the gateway, in the gateway subcommand
// and in the whole system.
type gatewayFlags struct {
	addr    string
	timeout time.Duration
	maxBody int64
	routes  string
}

// routeMap returns the routes of -routes, or the system's.
func (g *gatewayFlags) routeMap() ([]patgw.RouteSet, error) {
	if g.routes == "" {
		return sysgw.Routes(), nil
	}
	return patgw.LoadRoutes(g.routes)
}

// newGateway returns a services client on b and the gateway acting
// through it.
func newGateway(s *settings, b bus.Broker, g *gatewayFlags, routes []patgw.RouteSet) (*services.Service, *patgw.Gateway, error) {
	client, err := services.NewClient(append(s.serviceOptions(b), services.WithTimeout(g.timeout))...)
	if err != nil {
		return nil, nil, err
	}
	opts := []patgw.Option{patgw.WithLogger(s.log), patgw.WithTimeout(g.timeout), patgw.WithMaxBodyBytes(g.maxBody)}
	if g.timeout+5*time.Second > patgw.DefaultWriteTimeout {
		// The answer of the slowest act must still be written.
		opts = append(opts, patgw.WithWriteTimeout(g.timeout+5*time.Second))
	}
	gw, err := sysgw.New(client, routes, opts...)
	if err != nil {
		_ = client.Close()
		return nil, nil, err
	}
	return client, gw, nil
}

// serveHealth serves /healthz and /readyz of svc on addr (a patbus
// gateway without routes: readiness follows the service and its broker)
// until ctx ends, for the health checks of a process manager such as
// Docker. It returns once it listens, with the address it listens on.
func serveHealth(ctx context.Context, s *settings, svc *services.Service, addr string) (string, <-chan error, error) {
	gw, err := patgw.New(svc, nil, patgw.WithLogger(s.log))
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("health endpoint: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Serve(ctx, ln) }()
	return ln.Addr().String(), done, nil
}
