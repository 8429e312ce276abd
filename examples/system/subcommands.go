package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/patbus/patbus/examples/system/config"
	sysgw "github.com/patbus/patbus/examples/system/gateway"
	"github.com/patbus/patbus/examples/system/user"
	patgw "github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/rpc"
	"github.com/patbus/patbus/services"
	"github.com/patbus/patbus/store"
)

// This file holds the subcommands that run one part of the system each,
// as a process of its own: user, account, config and gateway.

// newFlagSet returns a flag set for a subcommand whose -h prints the
// synopsis, the description, the flags, the environment and examples.
func newFlagSet(name, synopsis, description, examples string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: %s\n\n%s\n\nflags:\n", synopsis, strings.TrimSpace(description))
		fs.PrintDefaults()
		printEnvironment(w)
		if examples != "" {
			fmt.Fprintf(w, "\nexamples:\n%s\n", strings.TrimRight(examples, "\n"))
		}
	}
	return fs
}

// printEnvironment lists the environment variables the command reads.
func printEnvironment(w io.Writer) {
	fmt.Fprintln(w, "\nenvironment:")
	for _, v := range environment() {
		fmt.Fprintf(w, "  %-17s %s\n", v.name, v.usage)
	}
}

// partExamples are the examples of the subcommands that run one part.
const partExamples = `  # every part as its own process, on RabbitMQ, MongoDB and Consul:
  export PATBUS_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ MONGODB_URI=mongodb://127.0.0.1:27017/ CONSUL_HTTP_ADDR=127.0.0.1:8500
  system user & system account & system config &
  system gateway -addr 127.0.0.1:8080
  # one MongoDB-compatible server for parts without MONGODB_URI:
  export MONGODB_URI=$(system mongodb -addr 127.0.0.1:27017 -dir /tmp/patbus-data | head -n 1)`

// runUser is the user subcommand.
func runUser(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("user", "system user [flags]",
		"Runs the user service: module:user,if:list|load|edit|create|delete and role:user,cmd:login, over the users in MongoDB (created with the sample users 甲, 乙, 丙 and asd when empty).",
		partExamples)
	var s settings
	s.addFlags(fs, true)
	health := fs.String("health", "", "serve /healthz and /readyz on `host:port` (such as :8081); empty: none")
	cost := fs.Int("bcrypt-cost", bcrypt.DefaultCost, "bcrypt `cost` of new password hashes")
	samples := samplesFlag(fs)
	if err := s.parse(fs, args, stderr); err != nil {
		return err
	}
	b, err := s.openBroker(ctx, userService)
	if err != nil {
		return err
	}
	defer b.Close()
	db, where, stop, err := s.openStore(ctx)
	if err != nil {
		return err
	}
	defer stop()
	svc, _, err := newUser(ctx, &s, b, db, user.WithBcryptCost(*cost), samples())
	if err != nil {
		return err
	}
	return serveServices(ctx, &s, stdout, *health, fmt.Sprintf("user service (MongoDB: %s, database %s)", where, s.database), svc)
}

// samplesFlag adds the -samples flag to fs and returns the user.Option
// it gives once parsed.
func samplesFlag(fs *flag.FlagSet) func() user.Option {
	on := fs.Bool("samples", true, "create the sample users (甲, 乙, 丙 and asd, each with the password 123) in an empty users collection; -samples=false for a deployment of your own")
	return func() user.Option {
		if *on {
			return user.WithSamples(user.Samples())
		}
		return user.WithSamples(nil)
	}
}

// runAccount is the account subcommand.
func runAccount(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("account", "system account [flags]",
		"Runs the account service: getUserById on the queue account.rpc (RabbitMQ's RPC tutorial) and as role:account,cmd:getUserById, from the users in MongoDB.",
		partExamples)
	var s settings
	s.addFlags(fs, true)
	health := fs.String("health", "", "serve /healthz and /readyz on `host:port` (such as :8081); empty: none")
	if err := s.parse(fs, args, stderr); err != nil {
		return err
	}
	b, err := s.openBroker(ctx, accountService)
	if err != nil {
		return err
	}
	defer b.Close()
	db, where, stop, err := s.openStore(ctx)
	if err != nil {
		return err
	}
	defer stop()
	users, err := store.NewCollection[user.User](db, user.CollectionName)
	if err != nil {
		return err
	}
	svc, srv, err := newAccount(ctx, &s, b, users)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		_ = svc.Close()
		return err
	}
	err = serveServices(ctx, &s, stdout, *health, fmt.Sprintf("account service on the queue %s (MongoDB: %s, database %s)", s.accountQueue(), where, s.database), svc)
	return errors.Join(err, stopRPC(srv))
}

// stopRPC drains an RPC server within services.DefaultDrainTimeout.
func stopRPC(srv *rpc.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), services.DefaultDrainTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return errors.Join(err, srv.Close())
	}
	return nil
}

// runConfig is the config subcommand.
func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("config", "system config [flags]",
		"Runs the config service (config-server): every act pinned with $$target:config-server is answered with the configuration, the system's own or the JSON object of -file.",
		partExamples)
	var s settings
	s.addFlags(fs, false)
	health := fs.String("health", "", "serve /healthz and /readyz on `host:port` (such as :8081); empty: none")
	file := fs.String("file", "", "JSON `file` of the configuration (default: the system's: database, gateway address, account queue, routes)")
	gatewayAddr := fs.String("gateway-addr", sysgw.DefaultAddr, "where the gateway listens, as the default configuration says")
	if err := s.parse(fs, args, stderr); err != nil {
		return err
	}
	doc, err := configDocument(&s, *file, *gatewayAddr, sysgw.Routes())
	if err != nil {
		return err
	}
	b, err := s.openBroker(ctx, "config")
	if err != nil {
		return err
	}
	defer b.Close()
	svc, err := newConfig(&s, b, doc)
	if err != nil {
		return err
	}
	return serveServices(ctx, &s, stdout, *health, "config service", svc)
}

// configDocument reads file, or makes the system's configuration.
func configDocument(s *settings, file, gatewayAddr string, routes []patgw.RouteSet) (config.Document, error) {
	if file != "" {
		return config.Load(file)
	}
	return defaultConfig(s, gatewayAddr, routes)
}

// serveServices starts the services, serves their health endpoint on
// healthAddr if it is not empty, says what serves on which broker, and
// runs them (services.Run) until ctx ends or SIGINT or SIGTERM arrives;
// then it drains them.
func serveServices(ctx context.Context, s *settings, stdout io.Writer, healthAddr, what string, svcs ...*services.Service) error {
	for _, svc := range svcs {
		if err := svc.Ready(ctx); err != nil {
			for _, o := range svcs {
				_ = o.Close()
			}
			return err
		}
	}
	var healthDone <-chan error
	if healthAddr != "" {
		hctx, cancel := context.WithCancel(ctx)
		defer func() {
			cancel()
			if healthDone != nil {
				<-healthDone
			}
		}()
		addr, done, err := serveHealth(hctx, s, svcs[0], healthAddr)
		if err != nil {
			for _, o := range svcs {
				_ = o.Close()
			}
			return err
		}
		healthDone = done
		fmt.Fprintf(stdout, "health on http://%s/healthz and /readyz\n", addr)
	}
	fmt.Fprintf(stdout, "%s serving on %s\n", what, s.brokerName())
	return services.Run(ctx, svcs...)
}

// runGateway is the gateway subcommand.
func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gateway", "system gateway [flags]",
		"Runs the HTTP gateway: GET/POST /user, GET/PUT/DELETE /user/:id, POST /login and GET /config, each an act on the bus; /healthz and /readyz for load balancers.",
		partExamples)
	var s settings
	s.addFlags(fs, false)
	var g gatewayFlags
	g.addFlags(fs)
	if err := s.parse(fs, args, stderr); err != nil {
		return err
	}
	routes, err := g.routeMap()
	if err != nil {
		return err
	}
	b, err := s.openBroker(ctx, "gateway")
	if err != nil {
		return err
	}
	defer b.Close()
	client, gw, err := newGateway(&s, b, &g, routes)
	if err != nil {
		return err
	}
	defer client.Close()
	if err := client.Ready(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	fmt.Fprintf(stdout, "gateway listening on http://%s (acting on %s)\n", ln.Addr(), s.brokerName())
	for _, r := range gw.Routes() {
		fmt.Fprintf(stdout, "  %-6s %-10s → %s\n", r.Method, r.Path, r.Pattern)
	}
	return gw.Serve(ctx, ln)
}

// addFlags defines the gateway's flags on fs.
func (g *gatewayFlags) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&g.addr, "addr", sysgw.DefaultAddr, "`host:port` to listen on (port 0: a free port)")
	fs.DurationVar(&g.timeout, "timeout", patgw.DefaultTimeout, "deadline of each act; past it the request is answered 504")
	fs.Int64Var(&g.maxBody, "max-body", patgw.DefaultMaxBodyBytes, "largest request body in `bytes`; larger ones are answered 413")
	fs.StringVar(&g.routes, "routes", "", "JSON `file` of the route map, in seneca-web's shape (default: the system's, gateway/routes.json)")
}
