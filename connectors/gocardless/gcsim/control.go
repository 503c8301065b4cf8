package gcsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// serveControl serves the control API under /_sim/ (see the package
// documentation). It is unauthenticated: the simulator is a test double.
func (s *Sim) serveControl(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, controlPrefix), "/")
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err != nil {
		return
	}
	status, v := s.control(r.Method, path, r, body)
	w.Header().Set(headerContentType, contentTypeJSON)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type controlError struct {
	Error string `json:"error"`
}

func bad(err error) (int, any) { return http.StatusBadRequest, controlError{err.Error()} }

// ClockState is the control API's view of the clock.
type ClockState struct {
	Now  time.Time `json:"now"`
	Mode string    `json:"mode"` // manual or moving
}

// Endpoint is the webhook endpoint, as the control API sets it.
type Endpoint struct {
	URL    string `json:"url"`
	Secret string `json:"secret"`
}

func (s *Sim) clockState() ClockState {
	mode := "moving"
	if s.manual {
		mode = "manual"
	}
	return ClockState{Now: s.clock.Now(), Mode: mode}
}

func (s *Sim) control(method, path string, r *http.Request, body []byte) (int, any) {
	route := method + " " + path
	if id, act, ok := flowControl(method, path); ok {
		return s.controlFlow(id, act, body)
	}
	if parts := strings.Split(path, "/"); method == http.MethodPost && len(parts) == 3 && parts[0] == "payments" &&
		parts[2] == "cancel_chargeback" {
		if err := s.CancelChargeback(parts[1]); err != nil {
			return http.StatusConflict, controlError{err.Error()}
		}
		return 200, struct{}{}
	}
	switch route {
	case "GET clock":
		return 200, s.clockState()
	case "POST clock/advance":
		by := r.URL.Query().Get("by")
		if by == "" && len(body) > 0 {
			var req struct {
				By string `json:"by"`
			}
			if err := json.Unmarshal(body, &req); err != nil {
				return bad(fmt.Errorf("body: %w", err))
			}
			by = req.By
		}
		d, err := time.ParseDuration(by)
		if err != nil || d < 0 {
			return bad(errors.New(`"by" must be a non-negative duration such as "36h"`))
		}
		s.Advance(d)
		return 200, s.clockState()
	case "GET scenarios":
		return 200, s.Scenarios()
	case "PUT scenarios":
		var rules []Rule
		if err := json.Unmarshal(body, &rules); err != nil {
			return bad(fmt.Errorf("body must be a JSON array of rules: %w", err))
		}
		if err := s.SetScenarios(rules); err != nil {
			return bad(err)
		}
		return 200, s.Scenarios()
	case "GET faults":
		return 200, s.Faults()
	case "PUT faults":
		var f Faults
		if err := json.Unmarshal(body, &f); err != nil {
			return bad(fmt.Errorf("body: %w", err))
		}
		if err := s.SetFaults(f); err != nil {
			return bad(err)
		}
		return 200, s.Faults()
	case "GET webhooks":
		state := r.URL.Query().Get("state")
		out := []Delivery{}
		for _, d := range s.Deliveries() {
			if state == "" || d.State == state {
				out = append(out, d)
			}
		}
		return 200, out
	case "POST webhooks/flush":
		if err := s.Flush(r.Context()); err != nil {
			return http.StatusServiceUnavailable, controlError{err.Error()}
		}
		return 200, s.Deliveries()
	case "PUT webhooks/endpoint":
		var e Endpoint
		if err := json.Unmarshal(body, &e); err != nil {
			return bad(fmt.Errorf("body: %w", err))
		}
		s.SetWebhookEndpoint(e.URL, e.Secret)
		return 200, struct {
			URL string `json:"url"`
		}{e.URL}
	case "POST tokens":
		var t struct {
			Token  string `json:"token"`
			Active bool   `json:"active"`
		}
		if err := json.Unmarshal(body, &t); err != nil || t.Token == "" {
			return bad(errors.New(`body must be {"token": "...", "active": true|false}`))
		}
		s.SetTokenActive(t.Token, t.Active)
		return 200, struct{}{}
	case "POST reset":
		s.Reset()
		return 200, s.State()
	case "GET state":
		return 200, s.State()
	}
	return http.StatusNotFound, controlError{"no control endpoint " + route + "; see the gcsim package documentation"}
}

// State summarises the simulator for the control API.
type State struct {
	Clock         ClockState     `json:"clock"`
	Counts        map[string]int `json:"counts"`
	QueuedEvents  int            `json:"queued_events"`
	PendingJobs   int            `json:"pending_jobs"`
	WebhookURLSet bool           `json:"webhook_url_set"`
}

// State returns counts of resources, events and deliveries.
func (s *Sim) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return State{
		Clock: s.clockState(),
		Counts: map[string]int{
			"creditors": len(s.creditors.list), "customers": len(s.customers.list),
			"customer_bank_accounts": len(s.accounts.list), "mandates": len(s.mandates.list),
			"payments": len(s.payments.list), "refunds": len(s.refunds.list),
			"subscriptions": len(s.subs.list), "payouts": len(s.payouts.list),
			"events": len(s.events.list), "webhook_deliveries": len(s.delivs),
			"billing_requests": len(s.billingRequests.list), "billing_request_flows": len(s.flows.list),
		},
		QueuedEvents:  len(s.outbox),
		PendingJobs:   len(s.jobs),
		WebhookURLSet: s.hook.URL != "",
	}
}

// flowControl recognises POST billing_request_flows/{id}/{complete|abandon|expire}.
func flowControl(method, path string) (id, act string, ok bool) {
	parts := strings.Split(path, "/")
	if method != http.MethodPost || len(parts) != 3 || parts[0] != "billing_request_flows" {
		return "", "", false
	}
	switch parts[2] {
	case "complete", "abandon", "expire":
		return parts[1], parts[2], true
	}
	return "", "", false
}

// controlFlow plays the payer of a flow: complete (optional body: a
// Payer), abandon, or expire.
func (s *Sim) controlFlow(id, act string, body []byte) (int, any) {
	var err error
	switch act {
	case "complete":
		var p Payer
		if len(body) > 0 {
			if err := json.Unmarshal(body, &p); err != nil {
				return bad(fmt.Errorf("body must be a payer object: %w", err))
			}
		}
		br, cerr := s.CompleteFlow(id, p)
		if cerr == nil {
			return 200, br
		}
		err = cerr
	case "abandon":
		err = s.AbandonFlow(id)
	case "expire":
		err = s.ExpireFlow(id)
	}
	if err != nil {
		return http.StatusConflict, controlError{err.Error()}
	}
	return 200, struct{}{}
}
