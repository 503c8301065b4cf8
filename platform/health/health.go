// Package health serves a service's internal endpoints: /healthz (the
// process is alive and not stuck in a state it cannot leave by itself, so
// that failing it gets the process restarted), /readyz (named dependency checks pass and the service is
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
	live     map[string]Check
	draining atomic.Bool
}

// New returns a Checker whose checks each get timeout to answer.
func New(timeout time.Duration) *Checker {
	return &Checker{timeout: timeout, checks: map[string]Check{}, live: map[string]Check{}}
}

// Add registers a check under name, replacing any check of that name.
func (c *Checker) Add(name string, check Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks[name] = check
}

// AddLiveness registers a liveness check under name: /healthz fails while
// it does. Only add conditions that a restart cures and waiting does not
// (a connection closed for good); a dependency that is merely down belongs
// in readiness, or every replica restarts during its outage.
func (c *Checker) AddLiveness(name string, check Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live[name] = check
}

// Drain makes /readyz fail from now on, so load balancers stop sending work
// before the service stops taking it.
func (c *Checker) Drain() { c.draining.Store(true) }

// Report is the body of /readyz.
type Report struct {
	Status string            `json:"status"` // ready, not_ready or draining
	Checks map[string]string `json:"checks"` // "ok" or the error
}

// Run runs every readiness check concurrently and reports.
func (c *Checker) Run(ctx context.Context) Report {
	r := c.run(ctx, c.checks)
	if c.draining.Load() {
		r.Status = "draining"
	}
	return r
}

// Live runs every liveness check concurrently and reports; its status is
// "ready" when all pass.
func (c *Checker) Live(ctx context.Context) Report { return c.run(ctx, c.live) }

func (c *Checker) run(ctx context.Context, set map[string]Check) Report {
	c.mu.RLock()
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	sort.Strings(names)
	checks := make([]Check, len(names))
	for i, name := range names {
		checks[i] = set[name]
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
	return r
}

// Handler serves /healthz, /readyz and, when metrics is not nil, /metrics.
func (c *Checker) Handler(metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		report := c.Live(r.Context())
		if report.Status != "ready" {
			w.WriteHeader(http.StatusServiceUnavailable)
			names := make([]string, 0, len(report.Checks))
			for name, res := range report.Checks {
				if res != "ok" {
					names = append(names, name+": "+res)
				}
			}
			sort.Strings(names)
			for _, n := range names {
				_, _ = w.Write([]byte(n + "\n"))
			}
			return
		}
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
