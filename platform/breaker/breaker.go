// Package breaker builds the circuit breakers (sony/gobreaker/v2) that sit in
// front of each external system, so an outage makes callers back off at once
// instead of burning retries, and publishes every breaker's state as the
// metric mlc_breaker_state (0 closed, 1 half-open, 2 open).
package breaker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Options tune a breaker; zero values take the defaults.
type Options struct {
	// Failures is how many consecutive failures open the breaker (default 5).
	Failures uint32
	// OpenFor is how long it stays open before letting a probe through
	// (default 30s).
	OpenFor time.Duration
	// Probes is how many calls may run while half-open (default 1).
	Probes uint32
	// IsSuccessful says which errors do not count against the system:
	// a validation error means the system is up. Default: only nil.
	IsSuccessful func(error) bool
}

// New returns a breaker named after the system and connection it guards,
// e.g. "gocardless/gc-main".
func New[T any](name string, o Options) *gobreaker.CircuitBreaker[T] {
	if o.Failures == 0 {
		o.Failures = 5
	}
	if o.OpenFor == 0 {
		o.OpenFor = 30 * time.Second
	}
	if o.Probes == 0 {
		o.Probes = 1
	}
	states.set(name, gobreaker.StateClosed)
	return gobreaker.NewCircuitBreaker[T](gobreaker.Settings{
		Name:         name,
		MaxRequests:  o.Probes,
		Timeout:      o.OpenFor,
		IsSuccessful: o.IsSuccessful,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= o.Failures
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			states.set(name, to)
			slog.Default().Warn("circuit breaker state changed", "breaker", name, "from", from.String(), "to", to.String())
		},
	})
}

// IsOpen reports whether err means the breaker refused the call without
// trying it: the caller should treat the system as unavailable.
func IsOpen(err error) bool {
	return errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests)
}

// registry holds the last state of every breaker of the process for the
// observable gauge.
type registry struct {
	once  sync.Once
	mu    sync.Mutex
	state map[string]gobreaker.State
}

var states registry

func (r *registry) set(name string, s gobreaker.State) {
	r.once.Do(r.register)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == nil {
		r.state = map[string]gobreaker.State{}
	}
	r.state[name] = s
}

// State returns the last recorded state of the named breaker.
func State(name string) (gobreaker.State, bool) {
	states.mu.Lock()
	defer states.mu.Unlock()
	s, ok := states.state[name]
	return s, ok
}

func (r *registry) register() {
	meter := otel.Meter("github.com/ml-connector/ml-connector/platform/breaker")
	_, err := meter.Int64ObservableGauge("mlc_breaker_state",
		metric.WithDescription("circuit breaker state per external system: 0 closed, 1 half-open, 2 open"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			for name, s := range r.state {
				o.Observe(int64(s), metric.WithAttributes(attribute.String("breaker", name)))
			}
			return nil
		}))
	if err != nil {
		slog.Default().Error("register breaker metric", "error", err)
	}
}
