package user

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/store"
)

// Result is the answer of edit and delete: Success reports whether a user
// had the id; edit's User is the user as saved.
type Result struct {
	Success bool  `json:"success"`
	User    *User `json:"user,omitempty"`
}

// Fields is the body of create and edit. A field left out (nil) is not
// set; create needs a name.
type Fields struct {
	Name     *string `json:"name,omitempty"`
	Password *string `json:"password,omitempty"`
}

// List answers module:user,if:list: every user, in the order of their
// ids (by creation to the second; see the package doc).
func (m *Module) List(ctx context.Context, _ gateway.Request) ([]User, error) {
	return m.users.List(ctx, nil)
}

// Load answers module:user,if:load: the user whose id is args.params.id,
// or "not_found".
func (m *Module) Load(ctx context.Context, in gateway.Request) (User, error) {
	id, err := paramID(in)
	if err != nil {
		return User{}, err
	}
	u, err := m.users.Load(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return User{}, patbus.NewError(patbus.CodeNotFound, fmt.Sprintf("no user with the id %s", id))
	}
	return u, err
}

// Create answers module:user,if:create: it stores a new user with the
// body's name and password (hashed) and answers the user, or "conflict"
// when the name is taken.
func (m *Module) Create(ctx context.Context, in gateway.Request) (User, error) {
	f, err := decodeFields(in.Args.Body)
	if err != nil {
		return User{}, err
	}
	if f.Name == nil {
		return User{}, invalid("a new user needs a name")
	}
	u := User{Name: *f.Name}
	if f.Password != nil {
		if u.Password, err = m.hash(*f.Password); err != nil {
			return User{}, err
		}
	}
	saved, err := m.users.Save(ctx, u)
	if errors.Is(err, store.ErrConflict) {
		return User{}, conflict(u.Name)
	}
	return saved, err
}

// Edit answers module:user,if:edit: it sets the body's name and/or
// password on the user whose id is args.params.id and answers
// {"success":true,"user":…}, or {"success":false} when no user has the
// id.
func (m *Module) Edit(ctx context.Context, in gateway.Request) (Result, error) {
	id, err := paramID(in)
	if err != nil {
		return Result{}, err
	}
	f, err := decodeFields(in.Args.Body)
	if err != nil {
		return Result{}, err
	}
	if f.Name == nil && f.Password == nil {
		return Result{}, invalid("nothing to change: give a name or a password")
	}
	// Save sets the fields the value marshals to: omitempty leaves out
	// the name or the password when the body does not give it.
	u := User{Entity: store.Entity{ID: id}}
	if f.Name != nil {
		u.Name = *f.Name
	}
	if f.Password != nil {
		if u.Password, err = m.hash(*f.Password); err != nil {
			return Result{}, err
		}
	}
	saved, err := m.users.Save(ctx, u)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Result{Success: false}, nil
	case errors.Is(err, store.ErrConflict):
		return Result{}, conflict(u.Name)
	case err != nil:
		return Result{}, err
	}
	return Result{Success: true, User: &saved}, nil
}

// Delete answers module:user,if:delete: it removes the user whose id is
// args.params.id and answers {"success":true}, or {"success":false} when
// no user has the id.
func (m *Module) Delete(ctx context.Context, in gateway.Request) (Result, error) {
	id, err := paramID(in)
	if err != nil {
		return Result{}, err
	}
	err = m.users.Remove(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Result{Success: false}, nil
	}
	if err != nil {
		return Result{}, err
	}
	return Result{Success: true}, nil
}

// hash returns the bcrypt hash of a password, which must not be empty.
func (m *Module) hash(password string) ([]byte, error) {
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), m.cost)
	if err != nil {
		return nil, fmt.Errorf("user: hash a password: %w", err)
	}
	return h, nil
}

// paramID returns args.params.id, checked to be an id.
func paramID(in gateway.Request) (string, error) {
	id := in.Args.Params["id"]
	if !store.ValidID(id) {
		return "", invalid(fmt.Sprintf("%q is not a user id (24 lower-case hexadecimal digits)", id))
	}
	return id, nil
}

// decodeFields decodes a body of create or edit, refusing unknown fields,
// and checks the name.
func decodeFields(body json.RawMessage) (Fields, error) {
	var f Fields
	if len(bytes.TrimSpace(body)) == 0 {
		return f, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Fields{}, invalid("body: " + err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return Fields{}, invalid("body: data after the JSON object")
	}
	if f.Name != nil {
		name, err := checkName(*f.Name)
		if err != nil {
			return Fields{}, invalid(err.Error())
		}
		f.Name = &name
	}
	return f, nil
}

// checkName returns the name without surrounding white space and in
// Unicode's composed form (NFC), or why it is not a name. Two spellings
// of one name must be one name: the composed form makes the decomposed
// spelling of a name the same string as the composed one, and format
// characters (Unicode category Cf: zero-width spaces, byte order marks,
// bidi controls), which are invisible, are refused, as control characters
// are.
func checkName(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", errors.New("the name is not UTF-8")
	}
	name = normalName(name)
	switch {
	case name == "":
		return "", errors.New("the name is empty")
	case utf8.RuneCountInString(name) > MaxNameLength:
		return "", fmt.Errorf("the name is longer than %d characters", MaxNameLength)
	case strings.ContainsFunc(name, unicode.IsControl):
		return "", errors.New("the name holds a control character")
	case strings.ContainsFunc(name, isFormat):
		return "", errors.New("the name holds an invisible format character (such as a zero-width space or a bidi control)")
	}
	return name, nil
}

// normalName returns name as it is stored: without surrounding white
// space, in NFC. Login looks a name up in this form too.
func normalName(name string) string {
	return norm.NFC.String(strings.TrimSpace(name))
}

// isFormat reports whether r is a format character (category Cf).
func isFormat(r rune) bool { return unicode.Is(unicode.Cf, r) }

// checkPassword says why a password cannot be used, if it cannot.
func checkPassword(password string) error {
	switch {
	case password == "":
		return invalid("the password is empty")
	case len(password) > MaxPasswordLength:
		return invalid(fmt.Sprintf("the password is longer than %d bytes", MaxPasswordLength))
	}
	return nil
}

func invalid(msg string) error { return patbus.NewError(patbus.CodeInvalidInput, msg) }

func conflict(name string) error {
	return patbus.NewError(patbus.CodeConflict, fmt.Sprintf("a user named %q exists already", name))
}
