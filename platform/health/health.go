// Package health serves a service's internal endpoints: /healthz (the
// process is alive), /readyz (named dependency checks pass and the service is
// not draining) and /metrics.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Check reports whether one dependency is usable.
type Check func(ctx context.Context) error

// Checker holds named readiness checks and the draining flag.
type Checker struct {
	timeout  time.Duration
	mu       sync.RWMutex
	checks   map[string]Check
	draining atomic.Bool
}

// New returns a Checker whose checks each get timeout to answer.
func New(timeout time.Duration) *Checker {
	return &Checker{timeout: timeout, checks: map[string]Check{}}
}

// Add registers a check under name, replacing any check of that name.
func (c *Checker) Add(name string, check Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks[name] = check
}

// Drain makes /readyz fail from now on, so load balancers stop sending work
// before the service stops taking it.
func (c *Checker) Drain() { c.draining.Store(true) }

// Report is the body of /readyz.
type Report struct {
	Status string            `json:"status"` // ready, not_ready or draining
	Checks map[string]string `json:"checks"` // "ok" or the error
}

// Run runs every check concurrently and reports.
func (c *Checker) Run(ctx context.Context) Report {
	c.mu.RLock()
	names := make([]string, 0, len(c.checks))
	for name := range c.checks {
		names = append(names, name)
	}
	sort.Strings(names)
	checks := make([]Check, len(names))
	for i, name := range names {
		checks[i] = c.checks[name]
	}
	c.mu.RUnlock()

	results := make([]error, len(names))
	var wg sync.WaitGroup
	for i, check := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			results[i] = check(cctx)
		})
	}
	wg.Wait()

	r := Report{Status: "ready", Checks: make(map[string]string, len(names))}
	for i, name := range names {
		r.Checks[name] = "ok"
		if results[i] != nil {
			r.Checks[name] = results[i].Error()
			r.Status = "not_ready"
		}
	}
	if c.draining.Load() {
		r.Status = "draining"
	}
	return r
}

// Handler serves /healthz, /readyz and, when metrics is not nil, /metrics.
func (c *Checker) Handler(metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		report := c.Run(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if report.Status != "ready" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(report)
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	return mux
}
