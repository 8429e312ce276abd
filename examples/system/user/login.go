package user

import (
	"context"
	"encoding/json"
	"errors"

	"golang.org/x/crypto/bcrypt"

	"github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/store"
)

// The codes of a login's answer, as in examples/login.
const (
	// LoginOK: the user exists and the password matches.
	LoginOK = 1000
	// LoginFailed: no such user, or a wrong password.
	LoginFailed = 2100
)

// Credentials is the input of role:user,cmd:login: User and Password at
// the top of the message, or, when User is empty, the same fields in
// args.body (the gateway's POST /login).
type Credentials struct {
	User     string        `json:"user"`
	Password string        `json:"password"`
	Args     *gateway.Args `json:"args,omitempty"`
}

// LoginResult is the answer of role:user,cmd:login.
type LoginResult struct {
	Code int `json:"code"`
}

// Login answers role:user,cmd:login: {"code":1000} when a user named
// in.User (without surrounding white space, in NFC, as create stores
// names) exists and in.Password matches its hash, {"code":2100}
// otherwise. It compares against a hash in either case, so that a
// missing user takes as long as a wrong password. Only a store that
// fails (not a missing user) is an error.
func (m *Module) Login(ctx context.Context, in Credentials) (LoginResult, error) {
	if in.User == "" && in.Args != nil && len(in.Args.Body) > 0 {
		var body struct {
			User     string `json:"user"`
			Password string `json:"password"`
		}
		if err := json.Unmarshal(in.Args.Body, &body); err != nil {
			return LoginResult{}, invalid("body: " + err.Error())
		}
		in.User, in.Password = body.User, body.Password
	}
	// The name is looked up as create stores it: trimmed, in NFC.
	name := normalName(in.User)
	hash := m.dummy
	found := false
	if name != "" {
		u, err := m.users.LoadBy(ctx, store.Filter{"name": name})
		switch {
		case err == nil:
			if len(u.Password) > 0 {
				hash, found = u.Password, true
			}
		case !errors.Is(err, store.ErrNotFound):
			return LoginResult{}, err
		}
	}
	match := bcrypt.CompareHashAndPassword(hash, []byte(in.Password)) == nil
	if found && match {
		return LoginResult{Code: LoginOK}, nil
	}
	return LoginResult{Code: LoginFailed}, nil
}
