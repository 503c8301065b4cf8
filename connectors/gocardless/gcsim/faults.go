package gcsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Faults are failures injected into the API and webhook delivery. Rates are
// probabilities from 0 to 1, drawn from a generator seeded by
// Options.Seed; the ...Next counters fail exactly the next N requests or
// deliveries, for tests that need determinism.
//
// In JSON (the control API) durations are strings such as "250ms".
type Faults struct {
	// Latency delays every API response.
	Latency time.Duration `json:"-"`
	// ServerErrorRate and ServerErrorNext answer API requests with 500 and
	// a `gocardless` error.
	ServerErrorRate float64 `json:"server_error_rate,omitempty"`
	ServerErrorNext int     `json:"server_error_next,omitempty"`
	// ServerErrorAfterCommit makes those 500s happen after the request
	// took effect (the response is lost, not the request), which is what
	// idempotency keys are for.
	ServerErrorAfterCommit bool `json:"server_error_after_commit,omitempty"`
	// RateLimitNext answers the next N API requests with 429
	// rate_limit_exceeded, whatever the token's real budget, with
	// Retry-After RateLimitRetryAfter (default 1 s).
	RateLimitNext       int           `json:"rate_limit_next,omitempty"`
	RateLimitRetryAfter time.Duration `json:"-"`
	// Webhook faults.
	Webhook WebhookFaults `json:"webhook"`
}

// faultsAlias has Faults' fields without its methods.
type faultsAlias Faults

type faultsJSON struct {
	faultsAlias
	Latency             string `json:"latency,omitempty"`
	RateLimitRetryAfter string `json:"rate_limit_retry_after,omitempty"`
}

// MarshalJSON writes durations as strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	j := faultsJSON{faultsAlias: faultsAlias(f)}
	if f.Latency != 0 {
		j.Latency = f.Latency.String()
	}
	if f.RateLimitRetryAfter != 0 {
		j.RateLimitRetryAfter = f.RateLimitRetryAfter.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads durations as strings ("250ms").
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*f = Faults(j.faultsAlias)
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
	}{{"latency", j.Latency, &f.Latency}, {"rate_limit_retry_after", j.RateLimitRetryAfter, &f.RateLimitRetryAfter}} {
		if d.in == "" {
			continue
		}
		v, err := time.ParseDuration(d.in)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		*d.out = v
	}
	return nil
}

// WebhookFaults disturb webhook delivery the way the internet does.
type WebhookFaults struct {
	// Duplicate sends a batch a second time after it was accepted.
	DuplicateRate float64 `json:"duplicate_rate,omitempty"`
	DuplicateNext int     `json:"duplicate_next,omitempty"`
	// Drop never sends a batch (its events stay in GET /events).
	DropRate float64 `json:"drop_rate,omitempty"`
	DropNext int     `json:"drop_next,omitempty"`
	// Reorder reverses a batch's events and holds the batch back until a
	// later batch has been sent (or ReorderHold passes, or Flush).
	ReorderRate float64 `json:"reorder_rate,omitempty"`
	ReorderNext int     `json:"reorder_next,omitempty"`
	// BadSignature signs a batch's first attempt with the wrong key;
	// retries are signed correctly.
	BadSignatureRate float64 `json:"bad_signature_rate,omitempty"`
	BadSignatureNext int     `json:"bad_signature_next,omitempty"`
}

func (f Faults) validate() error {
	var errs []error
	rate := func(name string, v float64) {
		if v < 0 || v > 1 {
			errs = append(errs, fmt.Errorf("%s %v is not between 0 and 1", name, v))
		}
	}
	count := func(name string, v int) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s %d is negative", name, v))
		}
	}
	if f.Latency < 0 {
		errs = append(errs, errors.New("latency is negative"))
	}
	if f.RateLimitRetryAfter < 0 {
		errs = append(errs, errors.New("rate limit retry-after is negative"))
	}
	rate("server error rate", f.ServerErrorRate)
	count("server errors next", f.ServerErrorNext)
	count("rate limit next", f.RateLimitNext)
	w := f.Webhook
	rate("webhook duplicate rate", w.DuplicateRate)
	rate("webhook drop rate", w.DropRate)
	rate("webhook reorder rate", w.ReorderRate)
	rate("webhook bad signature rate", w.BadSignatureRate)
	count("webhook duplicate next", w.DuplicateNext)
	count("webhook drop next", w.DropNext)
	count("webhook reorder next", w.ReorderNext)
	count("webhook bad signature next", w.BadSignatureNext)
	return errors.Join(errs...)
}

// SetFaults replaces the injected faults.
func (s *Sim) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	return nil
}

// Faults returns the faults in force (counters show what is left).
func (s *Sim) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// fire decides one fault: it consumes one of *next if any is left, else
// draws against rate. Callers hold s.mu.
func (s *Sim) fire(next *int, rate float64) bool {
	if *next > 0 {
		*next--
		return true
	}
	return rate > 0 && s.faultRNG.Float64() < rate
}
