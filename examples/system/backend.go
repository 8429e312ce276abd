package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/patbus/patbus/bus"
	"github.com/patbus/patbus/examples/system/account"
	"github.com/patbus/patbus/examples/system/config"
	"github.com/patbus/patbus/examples/system/internal/embedmongo"
	"github.com/patbus/patbus/services"
	"github.com/patbus/patbus/store"
)

// Version is the version every service of the reference system runs as.
const Version = "1.0.0"

// The names of the services.
const (
	userService    = "user"
	accountService = "account"
)

// DefaultDatabase is the MongoDB database of the reference system.
const DefaultDatabase = "patbus_system"

// settings say where a part of the system finds the broker, MongoDB and
// Consul, and which names keep its system apart from others on a shared
// broker. The flags of every subcommand fill them.
type settings struct {
	amqp      string
	mongoURI  string
	mongoDir  string
	consul    string
	database  string
	namespace string
	logLevel  string
	log       *slog.Logger
}

// addFlags defines the flags of the settings on fs; mongo says whether
// the part uses MongoDB.
func (s *settings) addFlags(fs *flag.FlagSet, mongo bool) {
	fs.StringVar(&s.amqp, "amqp", "", "RabbitMQ `address` (default $"+envAMQPURL+"); empty: the in-memory broker, private to this process")
	if mongo {
		fs.StringVar(&s.mongoURI, "mongodb", "", "MongoDB connection `string` (default $"+envMongoDBURI+"); empty: an embedded FerretDB, private to this process")
		fs.StringVar(&s.mongoDir, "mongodb-dir", "", "`directory` of the embedded FerretDB's data, kept after exit (default: a temporary directory, removed on exit)")
		fs.StringVar(&s.database, "database", DefaultDatabase, "MongoDB `database` of the users")
	}
	if !mongo {
		s.database = DefaultDatabase
	}
	fs.StringVar(&s.consul, "consul", "", "Consul agent `host:port` for health and versions (default $"+envConsulAddr+"); empty: no Consul")
	fs.StringVar(&s.namespace, "namespace", "", "`prefix` of the exchanges and queues, to run several systems on one broker (default: patbus's own names)")
	fs.StringVar(&s.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
}

// parse parses a part's command line into fs (parseFlags), fills in the
// addresses it did not give from the environment (fromEnv) and checks the
// settings (check).
func (s *settings) parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	s.fromEnv(fs)
	return s.check(stderr)
}

// fromEnv sets the addresses that fs's command line did not give from
// the environment. (The flags' defaults stay empty, so that -h never
// prints an address with its password.)
func (s *settings) fromEnv(fs *flag.FlagSet) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if !given["amqp"] {
		s.amqp = getenv(envAMQPURL)
	}
	if fs.Lookup("mongodb") != nil && !given["mongodb"] {
		s.mongoURI = getenv(envMongoDBURI)
	}
	if !given["consul"] {
		s.consul = getenv(envConsulAddr)
	}
}

// namespacePattern is what a namespace may hold: it becomes part of
// exchange and queue names.
var namespacePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// check checks the settings and makes the logger, which writes text to
// stderr.
func (s *settings) check(stderr io.Writer) error {
	var problems []error
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.logLevel)); err != nil {
		problems = append(problems, fmt.Errorf("-log-level: %q is not a level", s.logLevel))
	}
	if s.namespace != "" && !namespacePattern.MatchString(s.namespace) {
		problems = append(problems, fmt.Errorf("-namespace: %q may hold only letters, digits, '-', '_' and '.'", s.namespace))
	}
	if len(problems) > 0 {
		err := errors.Join(problems...)
		fmt.Fprintln(stderr, err)
		return usageError{err}
	}
	s.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return nil
}

// exchanges returns the act and registry exchanges.
func (s *settings) exchanges() (act, registry string) {
	if s.namespace == "" {
		return services.DefaultActExchange, services.DefaultRegistryExchange
	}
	return s.namespace + ".act", s.namespace + ".registry"
}

// accountQueue returns the queue of the account RPC.
func (s *settings) accountQueue() string {
	if s.namespace == "" {
		return account.Queue
	}
	return s.namespace + "." + account.Queue
}

// serviceNames are the services of the system.
func serviceNames() []string { return []string{userService, accountService, config.ServiceName} }

// openBroker opens the broker of the settings: RabbitMQ, or the
// in-memory broker for an empty address.
func (s *settings) openBroker(ctx context.Context, part string) (bus.Broker, error) {
	return bus.Open(ctx, s.amqp, bus.WithLogger(s.log), bus.WithConnectionName("patbus-system-"+part))
}

// serviceOptions are the options of every service of the system on b.
func (s *settings) serviceOptions(b bus.Broker) []services.Option {
	act, registry := s.exchanges()
	opts := []services.Option{services.WithBroker(b), services.WithLogger(s.log), services.WithExchanges(act, registry)}
	switch {
	case s.consul == "":
	case s.consul == getenv(envConsulAddr):
		// The Consul client reads CONSUL_HTTP_ADDR and the other CONSUL_*
		// variables (token, TLS) itself.
		opts = append(opts, services.WithConsul(""))
	default:
		opts = append(opts, services.WithConsul(s.consul))
	}
	return opts
}

// openStore opens the database of the settings on the MongoDB server
// they name, or, when they name none, on an embedded FerretDB that stop
// stops. stop closes the DB (and stops the server).
func (s *settings) openStore(ctx context.Context) (db *store.DB, where string, stop func(), err error) {
	uri, where := s.mongoURI, redact(s.mongoURI)
	var srv *embedmongo.Server
	if uri == "" {
		srv, err = embedmongo.Start(ctx, embedmongo.Config{Dir: s.mongoDir})
		if err != nil {
			return nil, "", nil, err
		}
		uri, where = srv.URI(), "embedded FerretDB at "+srv.URI()
		s.log.Info("system: started an embedded FerretDB", "uri", uri, "dir", srv.Dir())
	}
	db, err = store.Open(ctx, uri, s.database, store.WithLogger(s.log), store.WithAppName("patbus-system"))
	if err != nil {
		if srv != nil {
			_ = srv.Stop()
		}
		return nil, "", nil, err
	}
	stop = func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = db.Close(cctx)
		if srv != nil {
			_ = srv.Stop()
		}
	}
	return db, where, stop, nil
}

// brokerName describes the broker of the settings for people.
func (s *settings) brokerName() string {
	if strings.TrimSpace(s.amqp) == "" {
		return "the in-memory broker"
	}
	return "RabbitMQ at " + redact(s.amqp)
}

// redact returns the address with any password replaced by "xxxxx".
func redact(addr string) string {
	var out []string
	for _, a := range strings.Split(addr, ",") {
		if u, err := url.Parse(strings.TrimSpace(a)); err == nil {
			a = u.Redacted()
		}
		out = append(out, a)
	}
	return strings.Join(out, ",")
}

// removeTopology deletes the exchanges and queues of the system's
// namespace from b: what the demo and the tests leave on a shared
// RabbitMQ otherwise.
func (s *settings) removeTopology(ctx context.Context, b bus.Broker) error {
	act, registry := s.exchanges()
	var errs []error
	for _, name := range serviceNames() {
		errs = append(errs, b.DeleteQueue(ctx, act+"."+name+"@"+Version))
	}
	errs = append(errs, b.DeleteQueue(ctx, s.accountQueue()), b.DeleteExchange(ctx, act), b.DeleteExchange(ctx, registry))
	return errors.Join(errs...)
}
