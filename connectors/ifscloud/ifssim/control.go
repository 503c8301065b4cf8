package ifssim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// faults are the failures the simulator injects into API requests.
type faults struct {
	latency      time.Duration
	failNext     int
	failStatus   int
	throttleNext int
	retryAfter   time.Duration
	raceNext     int
}

// SetLatency delays every API request by d (0 turns it off).
func (s *Sim) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.latency = d
}

// FailNext makes the next n API requests fail with status (a 5xx; 0 means
// 503) and an ORA- error, as an overloaded IFS database does.
func (s *Sim) FailNext(n, status int) {
	if status < 500 || status > 599 {
		status = http.StatusServiceUnavailable
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.failNext, s.faults.failStatus = n, status
}

// ThrottleNext answers the next n API requests 429 with Retry-After (whole
// seconds, at least 1).
func (s *Sim) ThrottleNext(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.throttleNext, s.faults.retryAfter = n, retryAfter
}

// RaceNextWrites makes the next n writes lose an ETag race: the entity is
// changed (new ETag) just before the write's If-Match is checked, so the
// write is refused with 412.
func (s *Sim) RaceNextWrites(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.raceNext = n
}

// RevokeTokens invalidates every access token issued so far: the next API
// request with one is answered 401.
func (s *Sim) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// FaultSpec is the body of POST /_sim/faults; absent fields change nothing.
type FaultSpec struct {
	Latency        *string `json:"latency,omitempty"` // duration, e.g. "200ms"
	FailNext       *int    `json:"fail_next,omitempty"`
	FailStatus     int     `json:"fail_status,omitempty"`
	ThrottleNext   *int    `json:"throttle_next,omitempty"`
	RetryAfter     string  `json:"retry_after,omitempty"` // duration
	RaceNextWrites *int    `json:"race_next_writes,omitempty"`
	RevokeTokens   bool    `json:"revoke_tokens,omitempty"`
}

// control serves the control API:
//
//	GET  /_sim/invoices, /_sim/customers     the data
//	PUT  /_sim/invoices, /_sim/customers     add or replace (JSON array), each a change
//	POST /_sim/seed                          generate data (Seed)
//	GET  /_sim/mixed-payments, /_sim/mandate-log   what the write side recorded
//	GET  /_sim/stats, /_sim/requests         counters and the request log
//	POST /_sim/faults                        inject faults (FaultSpec)
func (s *Sim) control(w http.ResponseWriter, r *http.Request) {
	reply := func(v any, err error) {
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	decode := func(v any) error {
		if err := json.NewDecoder(r.Body).Decode(v); err != nil {
			return fmt.Errorf("ifssim: body: %w", err)
		}
		return nil
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /_sim/invoices":
		reply(s.Invoices(), nil)
	case "PUT /_sim/invoices":
		var invs []Invoice
		err := decode(&invs)
		if err == nil {
			err = s.PutInvoices(invs...)
		}
		reply(map[string]int{"stored": len(invs)}, err)
	case "GET /_sim/customers":
		reply(s.Customers(), nil)
	case "PUT /_sim/customers":
		var cs []Customer
		err := decode(&cs)
		if err == nil {
			err = s.PutCustomers(cs...)
		}
		reply(map[string]int{"stored": len(cs)}, err)
	case "POST /_sim/seed":
		var sd Seed
		err := decode(&sd)
		if err == nil {
			err = s.Seed(sd)
		}
		reply(map[string]string{"status": "seeded"}, err)
	case "GET /_sim/mixed-payments":
		reply(s.MixedPayments(), nil)
	case "GET /_sim/mandate-log":
		reply(s.MandateLog(), nil)
	case "GET /_sim/stats":
		reply(s.Stats(), nil)
	case "GET /_sim/requests":
		reply(s.Requests(), nil)
	case "POST /_sim/faults":
		var f FaultSpec
		err := decode(&f)
		if err == nil {
			err = s.applyFaults(f)
		}
		reply(map[string]string{"status": "ok"}, err)
	default:
		http.Error(w, "ifssim: no control operation "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	}
}

func (s *Sim) applyFaults(f FaultSpec) error {
	duration := func(name, v string) (time.Duration, error) {
		if v == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("ifssim: %s %q is not a duration", name, v)
		}
		return d, nil
	}
	retryAfter, err := duration("retry_after", f.RetryAfter)
	if err != nil {
		return err
	}
	if f.Latency != nil {
		d, err := duration("latency", *f.Latency)
		if err != nil {
			return err
		}
		s.SetLatency(d)
	}
	if f.FailNext != nil {
		s.FailNext(*f.FailNext, f.FailStatus)
	}
	if f.ThrottleNext != nil {
		s.ThrottleNext(*f.ThrottleNext, retryAfter)
	}
	if f.RaceNextWrites != nil {
		s.RaceNextWrites(*f.RaceNextWrites)
	}
	if f.RevokeTokens {
		s.RevokeTokens()
	}
	return nil
}
