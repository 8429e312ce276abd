package account

import (
	"context"
	"encoding/json"
	"errors"
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

// Request asks for a user by id.
type Request struct {
	// Method is "getUserById" or empty.
	Method string `json:"method,omitempty"`
	// UID is the user's id (user.User's ID).
	UID string `json:"uid"`
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
// reply: a body that is not a JSON request is answered StateNotFound
// with "bad request: …" in msg, as examples/rpcaccount does.
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
