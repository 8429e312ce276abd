package config

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/services"
)

// ServiceName is the name the config service runs under: acts pinned with
// $$target:config-server reach it.
const ServiceName = "config-server"

// Pattern is the config service's action: every act pinned to it.
const Pattern = "$$target:" + ServiceName

// Config is the reference system's default configuration.
type Config struct {
	// System names the system.
	System string `json:"system"`
	// Database is the MongoDB database of the users.
	Database string `json:"database"`
	// Gateway is where the gateway listens.
	Gateway string `json:"gateway"`
	// AccountQueue is the queue the account service answers on.
	AccountQueue string `json:"accountQueue"`
	// Routes is the gateway's route map.
	Routes []gateway.RouteSet `json:"routes"`
}

// Document is a configuration as the service hands it out: a JSON object.
type Document json.RawMessage

// Encode returns c as a Document.
func (c Config) Encode() (Document, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Document(b), nil
}

// Parse checks that data is one JSON object and returns it as a
// Document.
func Parse(data []byte) (Document, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		if err == nil {
			err = fmt.Errorf("not an object")
		}
		return nil, fmt.Errorf("config: %w: %w", patbus.ErrInvalidConfig, err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return nil, fmt.Errorf("config: %w: %w", patbus.ErrInvalidConfig, err)
	}
	return Document(buf.Bytes()), nil
}

// Load reads a Document from the file name.
func Load(name string) (Document, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data)
}

// Register adds the action Pattern to svc, which must be named
// ServiceName for callers to reach it: it answers doc, whatever the act
// says.
func Register(svc *services.Service, doc Document) error {
	if svc.Name() != ServiceName {
		return fmt.Errorf("config: %w: the service is named %q, not %q", patbus.ErrInvalidConfig, svc.Name(), ServiceName)
	}
	if _, err := Parse(doc); err != nil {
		return err
	}
	body := json.RawMessage(doc)
	return svc.Add(Pattern, services.HandlerFunc(func(context.Context, *services.Message) (any, error) {
		return body, nil
	}))
}
