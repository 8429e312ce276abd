package account

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/patbus/patbus/examples/system/user"
	"github.com/patbus/patbus/services"
	"github.com/patbus/patbus/store"
)

// Queue is the default queue of the RPC, as in examples/rpcaccount.
const Queue = "account.rpc"

// Pattern is the action that answers getUserById for patbus callers.
const Pattern = "role:account,cmd:getUserById"

// Method is the RPC's one method.
const Method = "getUserById"

// The states of an answer, as in examples/rpcaccount.
const (
	StateOK       = 1000
	StateNotFound = 2000
)

// Request asks for a user by id. Its JSON form's uid may be a string or a
// number (UnmarshalJSON).
type Request struct {
	// Method is "getUserById" or empty.
	Method string `json:"method,omitempty"`
	// UID is the user's id (user.User's ID).
	UID string `json:"uid"`

	// badUID is the JSON type of a uid that was neither a string, a
	// number nor null ("an object", "an array", "a boolean"), as
	// UnmarshalJSON found it; empty otherwise.
	badUID string
}

// UnmarshalJSON decodes a request, taking a uid that is a JSON string or
// a number, as examples/rpcaccount's clients send it ({"uid":2}). A
// number is never an id: it leaves UID empty, which GetUserByID answers
// "user not found", as it does an id that no user has. A uid of another
// type is no error here either: GetUserByID answers it StateNotFound
// with a msg that names the type. A body that is not a JSON object, or a
// method that is not a string, is an error.
func (r *Request) UnmarshalJSON(data []byte) error {
	if k := jsonKind(data); k != "an object" && k != "null" {
		return fmt.Errorf("account: the request is %s, not a JSON object", k)
	}
	var in struct {
		Method string          `json:"method"`
		UID    json.RawMessage `json:"uid"`
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	*r = Request{Method: in.Method}
	switch k := jsonKind(in.UID); k {
	case "a string":
		return json.Unmarshal(in.UID, &r.UID)
	case "a number", "null", "":
		// No id: answered "user not found".
	default:
		r.badUID = k
	}
	return nil
}

// jsonKind names the type of a JSON value by its first byte, or returns
// "" for none.
func jsonKind(v []byte) string {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return ""
	}
	switch c := v[0]; {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	default:
		return "a number"
	}
}

// Account is what the service tells about a user.
type Account struct {
	UID     string    `json:"uid"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// Response is the answer: State StateOK with Data, or StateNotFound with
// a nil Data and the reason in Msg.
type Response struct {
	State int      `json:"state"`
	Msg   string   `json:"msg"`
	Data  *Account `json:"data"`
}

// Service answers getUserById from a collection of users. It is safe for
// concurrent use.
type Service struct {
	users *store.Collection[user.User]
}

// New returns a Service reading users.
func New(users *store.Collection[user.User]) *Service { return &Service{users: users} }

// GetUserByID answers a request. Only a store that fails is an error.
func (s *Service) GetUserByID(ctx context.Context, req Request) (Response, error) {
	if req.Method != "" && req.Method != Method {
		return Response{State: StateNotFound, Msg: "unknown method " + req.Method}, nil
	}
	if req.badUID != "" {
		return Response{State: StateNotFound, Msg: "bad request: the uid is " + req.badUID + ", not a string or a number"}, nil
	}
	if !store.ValidID(req.UID) {
		return Response{State: StateNotFound, Msg: "user not found"}, nil
	}
	u, err := s.users.Load(ctx, req.UID)
	if errors.Is(err, store.ErrNotFound) {
		return Response{State: StateNotFound, Msg: "user not found"}, nil
	}
	if err != nil {
		return Response{}, err
	}
	return Response{State: StateOK, Msg: "ok", Data: &Account{UID: u.ID, Name: u.Name, Created: u.Created}}, nil
}

// Answer answers the body of a request on the queue with the body of the
// reply: a body that is not a JSON request (Request.UnmarshalJSON) is
// answered StateNotFound with "bad request: …" in msg, as
// examples/rpcaccount does.
func (s *Service) Answer(ctx context.Context, body []byte) ([]byte, error) {
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		return json.Marshal(Response{State: StateNotFound, Msg: "bad request: " + err.Error()})
	}
	resp, err := s.GetUserByID(ctx, req)
	if err != nil {
		return nil, err
	}
	return json.Marshal(resp)
}

// Register adds the action Pattern to svc.
func (s *Service) Register(svc *services.Service) error {
	return services.AddFunc(svc, Pattern, s.GetUserByID)
}
