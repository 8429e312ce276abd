package services

import (
	"context"
	"errors"
	"fmt"
)

// Plugin is a reusable bundle of actions and set-up (Seneca's plugin). Use
// calls Init once; Init usually adds patterns and may act. If a plugin also
// implements PluginCloser, Close and Shutdown call its Close, in the
// reverse order of Use, after the service has stopped taking requests.
type Plugin interface {
	// Name identifies the plugin; it is unique within a service.
	Name() string
	// Init sets the plugin up on the service. ctx is Use's context and
	// carries the options given to Use (PluginOptions).
	Init(ctx context.Context, s *Service) error
}

// PluginCloser is a Plugin that has something to release at Close.
type PluginCloser interface {
	Close(ctx context.Context) error
}

type pluginEntry struct {
	p    Plugin
	opts map[string]any
}

type pluginOptionsKey struct{}

// Use adds a plugin: it calls p.Init with ctx, which carries the plugin's
// options (Seneca's use(plugin, options)): the maps given here, merged in
// order (later keys win), for Init to read with PluginOptions. A plugin
// whose Init fails is not kept, and Use returns the error; the patterns its
// Init added before it failed stay (as in Seneca, where a failed plugin
// ends the instance, a service whose plugin fails is meant to be closed,
// not run half set up). Use fails with
// ErrDuplicatePlugin if a plugin of the same name is in use, and with
// ErrClosed after Close.
func (s *Service) Use(ctx context.Context, p Plugin, options ...map[string]any) error {
	if p == nil {
		return fmt.Errorf("%w: nil plugin", ErrInvalidConfig)
	}
	name := p.Name()
	opts := map[string]any{}
	for _, o := range options {
		for k, v := range o {
			opts[k] = v
		}
	}
	s.mu.Lock()
	if s.state.Load() == stateClosed {
		s.mu.Unlock()
		return ErrClosed
	}
	for _, e := range s.plugins {
		if e.p.Name() == name {
			s.mu.Unlock()
			return fmt.Errorf("%w: %q", ErrDuplicatePlugin, name)
		}
	}
	// Reserve the name while Init runs.
	s.plugins = append(s.plugins, pluginEntry{p: p, opts: opts})
	s.mu.Unlock()
	if err := p.Init(context.WithValue(ctx, pluginOptionsKey{}, opts), s); err != nil {
		s.mu.Lock()
		for i, e := range s.plugins {
			if e.p == p {
				s.plugins = append(s.plugins[:i], s.plugins[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		return fmt.Errorf("services: init plugin %q: %w", name, err)
	}
	return nil
}

// PluginOptions returns the options given to Use, from the context that
// Init received; an empty map elsewhere.
func PluginOptions(ctx context.Context) map[string]any {
	if m, ok := ctx.Value(pluginOptionsKey{}).(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

// Plugins returns the names of the plugins in use, in the order of Use.
func (s *Service) Plugins() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.plugins))
	for i, e := range s.plugins {
		out[i] = e.p.Name()
	}
	return out
}

// closePlugins closes the plugins in the reverse order of Use.
func (s *Service) closePlugins(ctx context.Context) error {
	s.mu.Lock()
	list := append([]pluginEntry(nil), s.plugins...)
	s.mu.Unlock()
	var errs []error
	for i := len(list) - 1; i >= 0; i-- {
		c, ok := list[i].p.(PluginCloser)
		if !ok {
			continue
		}
		if err := c.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("plugin %q: %w", list[i].p.Name(), err))
		}
	}
	return errors.Join(errs...)
}
