package user

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"golang.org/x/crypto/bcrypt"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/internal/logx"
	"github.com/patbus/patbus/services"
	"github.com/patbus/patbus/store"
)

// The patterns of the module's actions.
const (
	PatternList   = "module:user,if:list"
	PatternLoad   = "module:user,if:load"
	PatternCreate = "module:user,if:create"
	PatternEdit   = "module:user,if:edit"
	PatternDelete = "module:user,if:delete"
	PatternLogin  = "role:user,cmd:login"
)

// CollectionName is the MongoDB collection the users live in.
const CollectionName = "users"

// MaxNameLength is the longest name, in characters (runes).
const MaxNameLength = 100

// MaxPasswordLength is the longest password, in bytes: bcrypt uses no
// more.
const MaxPasswordLength = 72

// User is a user as stored. Its JSON form has the id, the name and the
// times; the password hash stays in MongoDB.
type User struct {
	store.Entity `bson:",inline"`
	// Name is the user's unique name, UTF-8. (omitempty lets an edit
	// that changes only the password leave the name as it is.)
	Name string `bson:"name,omitempty" json:"name"`
	// Password is the bcrypt hash of the password, empty for a user
	// without one.
	Password []byte `bson:"password,omitempty" json:"-"`
}

// Sample is a user that New creates in an empty collection.
type Sample struct {
	Name     string
	Password string
}

// Samples returns the sample users of the reference system: asd (the
// user of examples/login), 甲, 乙 and 丙, each with the password "123".
func Samples() []Sample {
	return []Sample{{"asd", "123"}, {"甲", "123"}, {"乙", "123"}, {"丙", "123"}}
}

// Option configures a Module.
type Option func(*config)

type config struct {
	cost    int
	samples []Sample
	log     *slog.Logger
}

// WithBcryptCost sets the bcrypt cost of new password hashes, between
// bcrypt.MinCost and bcrypt.MaxCost. Default bcrypt.DefaultCost.
func WithBcryptCost(cost int) Option { return func(c *config) { c.cost = cost } }

// WithSamples replaces the sample users New creates in an empty
// collection; no samples (nil) creates none. Default Samples().
func WithSamples(samples []Sample) Option {
	return func(c *config) { c.samples = append([]Sample(nil), samples...) }
}

// WithLogger sets the logger; nil (the default) means discard.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// Module is the user module: its actions over one collection of users.
type Module struct {
	users *store.Collection[User]
	cost  int
	log   *slog.Logger
	// dummy is a hash that no password matches, compared against when a
	// login names no user, so that a login takes as long either way.
	dummy []byte
}

// New returns the module over the collection CollectionName of db. It
// creates the unique index on the name and, if the collection is empty,
// the sample users; ctx bounds that work. Invalid options are reported
// together in an error wrapping patbus.ErrInvalidConfig.
func New(ctx context.Context, db *store.DB, opts ...Option) (*Module, error) {
	cfg := config{cost: bcrypt.DefaultCost, samples: Samples()}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	var problems []error
	if db == nil {
		problems = append(problems, errors.New("nil store.DB"))
	}
	if cfg.cost < bcrypt.MinCost || cfg.cost > bcrypt.MaxCost {
		problems = append(problems, fmt.Errorf("bcrypt cost must be between %d and %d, got %d", bcrypt.MinCost, bcrypt.MaxCost, cfg.cost))
	}
	for _, s := range cfg.samples {
		if _, err := checkName(s.Name); err != nil {
			problems = append(problems, fmt.Errorf("sample user %q: %w", s.Name, err))
		}
		if len(s.Password) > MaxPasswordLength {
			problems = append(problems, fmt.Errorf("sample user %q: password longer than %d bytes", s.Name, MaxPasswordLength))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("user: %w: %w", patbus.ErrInvalidConfig, errors.Join(problems...))
	}
	users, err := store.NewCollection[User](db, CollectionName)
	if err != nil {
		return nil, fmt.Errorf("user: %w", err)
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("no user has this password"), cfg.cost)
	if err != nil {
		return nil, fmt.Errorf("user: %w", err)
	}
	m := &Module{users: users, cost: cfg.cost, log: logx.OrDiscard(cfg.log), dummy: dummy}
	if err := users.EnsureIndex(ctx, store.Index{Keys: []string{"name"}, Unique: true}); err != nil {
		return nil, fmt.Errorf("user: unique index on the name: %w", err)
	}
	if err := m.seed(ctx, cfg.samples); err != nil {
		return nil, err
	}
	return m, nil
}

// seed creates the samples when the collection is empty. A sample that
// another instance created meanwhile (a conflict) is no error.
func (m *Module) seed(ctx context.Context, samples []Sample) error {
	if len(samples) == 0 {
		return nil
	}
	n, err := m.users.Count(ctx, nil)
	if err != nil {
		return fmt.Errorf("user: count users: %w", err)
	}
	if n > 0 {
		return nil
	}
	for _, s := range samples {
		u := User{Name: normalName(s.Name)} // as create stores it
		if s.Password != "" {
			if u.Password, err = bcrypt.GenerateFromPassword([]byte(s.Password), m.cost); err != nil {
				return fmt.Errorf("user: hash the password of %q: %w", s.Name, err)
			}
		}
		if _, err := m.users.Save(ctx, u); err != nil && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("user: create sample user %q: %w", s.Name, err)
		}
	}
	m.log.Info("user: created the sample users", "count", len(samples))
	return nil
}

// Collection returns the module's collection, for services that read the
// same users (the account service).
func (m *Module) Collection() *store.Collection[User] { return m.users }

// Register adds the module's actions to svc.
func (m *Module) Register(svc *services.Service) error {
	return errors.Join(
		services.AddFunc(svc, PatternList, m.List),
		services.AddFunc(svc, PatternLoad, m.Load),
		services.AddFunc(svc, PatternCreate, m.Create),
		services.AddFunc(svc, PatternEdit, m.Edit),
		services.AddFunc(svc, PatternDelete, m.Delete),
		services.AddFunc(svc, PatternLogin, m.Login),
	)
}
