package services

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/patbus/patbus/patterns"
)

// Message is what a handler receives: the act's JSON object, decoded, with
// the pattern of the action that matched it and the act's tx id.
//
// A Message belongs to one handler call; its Data may be read by the
// handler and passed on (to Prior or to another act) but should not be
// changed while something else reads it.
type Message struct {
	// Data is the decoded JSON object: the caller's input merged with the
	// pairs of the pattern it acted on. Numbers parsed from JSON (an act
	// over the broker, an input given as a struct or as JSON) are
	// json.Number, with their exact digits; the values of a map input stay
	// as they were given.
	Data map[string]any
	// Pattern is the pattern of the action that was chosen.
	Pattern patterns.Pattern
	// Tx is the act's tx id (Seneca's tx$), also in the handler's context.
	Tx string

	rawOnce sync.Once
	raw     []byte
	rawErr  error

	// For Decode's shortcut (decodeMap): the service, nil in a Message
	// made elsewhere, and whether the message came with its JSON.
	svc     *Service
	hasBody bool
}

// Get returns the value of key in Data, or nil.
func (m *Message) Get(key string) any { return m.Data[key] }

// Raw returns the message as JSON bytes: the body as it arrived from the
// broker, or Data encoded for an act that stayed in-process. The bytes must
// not be modified.
func (m *Message) Raw() ([]byte, error) {
	m.rawOnce.Do(func() {
		if m.raw == nil {
			m.raw, m.rawErr = json.Marshal(m.Data)
		}
	})
	return m.raw, m.rawErr
}

// Decode unmarshals the message into v (usually a pointer to a struct),
// with encoding/json's rules. A failure wraps ErrInvalidInput.
func (m *Message) Decode(v any) error {
	// An act made in-process with a map has no JSON yet: a struct of plain
	// fields is filled from Data directly when that gives what the JSON
	// would.
	if m.svc != nil && !m.hasBody && m.Data != nil && m.svc.decodeMap(m.Data, v) {
		return nil
	}
	raw, err := m.Raw()
	if err != nil {
		return fmt.Errorf("%w: encode message: %w", ErrInvalidInput, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidInput, newDecodeError(err))
	}
	return nil
}

// Reply is the answer to an act.
type Reply struct {
	// Body is the JSON the action answered with.
	Body []byte
	// Service and Version name the service that answered; both are empty
	// when the answer is a message's default$.
	Service string
	Version string
	// Tx is the act's tx id.
	Tx string
	// Local reports whether the action ran in-process, without the broker.
	Local bool
}

// Decode unmarshals the reply's body into v. A failure wraps ErrBadReply.
func (r *Reply) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("%w: decode reply from %s into %T: %w", ErrBadReply, r.from(), v, err)
	}
	return nil
}

// Map decodes the reply as a JSON object; a JSON null gives an empty map.
// Any other non-object fails with an error wrapping ErrBadReply.
func (r *Reply) Map() (map[string]any, error) {
	var m map[string]any
	if err := r.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

func (r *Reply) from() string {
	if r.Service == "" {
		return "default$"
	}
	return r.Service + "@" + r.Version
}

// toObject turns an act's input into a fresh map it may change: nil is {};
// a map[string]any is copied; a *Message gives a copy of its Data;
// json.RawMessage, []byte and string are parsed as JSON; anything else is
// encoded with encoding/json and parsed back. Whatever is not a JSON object
// fails with ErrInvalidInput.
func toObject(input any) (map[string]any, error) {
	var raw []byte
	switch v := input.(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		m := make(map[string]any, len(v)+2)
		for k, x := range v {
			m[k] = x
		}
		return m, nil
	case *Message:
		if v == nil {
			return map[string]any{}, nil
		}
		return toObject(v.Data)
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	case string:
		raw = []byte(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: encode %T: %w", ErrInvalidInput, input, err)
		}
		raw = b
	}
	return decodeObject(raw)
}

// checkObject checks that raw starts as a JSON object; what follows is
// checked by whoever decodes it (json.Unmarshal refuses a malformed object
// and data after it).
func checkObject(raw []byte) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrInvalidInput)
	}
	return nil
}

// decodeObject parses raw, which must be one JSON object.
func decodeObject(raw []byte) (map[string]any, error) {
	if err := checkObject(raw); err != nil {
		return nil, err
	}
	// UseNumber keeps every number's digits: float64 would round integers
	// beyond 2^53 on their way through an act.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalidInput)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}
