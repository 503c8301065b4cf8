package gcsim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"time"
)

// Headers GoCardless sends with webhooks.
const (
	webhookOrigin    = "https://api.gocardless.com"
	webhookUserAgent = "gocardless-webhook-service/1.1"
)

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed" // attempts exhausted
	DeliveryDropped   = "dropped"
)

// Delivery is one webhook request (a batch of events) and its attempts.
type Delivery struct {
	WebhookID string          `json:"webhook_id"`
	EventIDs  []string        `json:"event_ids"`
	Body      json.RawMessage `json:"body"` // the exact bytes sent
	State     string          `json:"state"`
	Faults    []string        `json:"faults,omitempty"` // dropped, reordered, bad_signature, duplicated
	Attempts  []Attempt       `json:"attempts"`
	CreatedAt time.Time       `json:"created_at"` // wall clock

	badSig    bool
	duplicate bool
	parked    bool
	parkedAt  time.Time
	next      time.Time // wall time of the next attempt
}

// Attempt is one POST of a delivery.
type Attempt struct {
	At         time.Time `json:"at"`
	URL        string    `json:"url"`
	StatusCode int       `json:"status_code,omitempty"`
	Error      string    `json:"error,omitempty"`
	// BadSignature is set when the bad-signature fault signed this
	// attempt with the wrong key.
	BadSignature bool `json:"bad_signature,omitempty"`
	// Duplicate marks the extra copy sent by the duplicate fault.
	Duplicate bool `json:"duplicate,omitempty"`
}

func (d *Delivery) clone() Delivery {
	c := *d
	c.EventIDs = slices.Clone(d.EventIDs)
	c.Body = slices.Clone(d.Body)
	c.Faults = slices.Clone(d.Faults)
	c.Attempts = slices.Clone(d.Attempts)
	return c
}

type webhookBody struct {
	Events []Event     `json:"events"`
	Meta   webhookMeta `json:"meta"`
}

type webhookMeta struct {
	WebhookID string `json:"webhook_id"`
}

// sign returns the Webhook-Signature of body: lowercase hex HMAC-SHA256
// keyed with the secret exactly as configured.
func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// SetWebhookEndpoint changes where webhooks go (and the signing secret);
// pending deliveries are sent to the new endpoint. An empty url stops
// queueing new events for delivery.
func (s *Sim) SetWebhookEndpoint(url, secret string) {
	s.mu.Lock()
	s.hook.URL, s.hook.Secret = url, secret
	s.mu.Unlock()
	s.kick()
}

// Deliveries returns every webhook delivery so far, oldest first.
func (s *Sim) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, 0, len(s.delivs))
	for _, d := range s.delivs {
		out = append(out, d.clone())
	}
	return out
}

// Flush sends every queued event now, and retries every pending delivery
// at once (ignoring its backoff and any reorder hold). It returns when each
// has had one attempt, or ctx ends.
func (s *Sim) Flush(ctx context.Context) error {
	s.dispatch(ctx, true)
	return ctx.Err()
}

// enqueueWebhook queues ev for delivery. Callers hold s.mu.
func (s *Sim) enqueueWebhook(ev *Event) {
	if s.hook.URL == "" {
		return
	}
	if len(s.outbox) == 0 {
		s.firstOut = s.wall()
	}
	s.outbox = append(s.outbox, ev)
}

// kick wakes the dispatcher without blocking.
func (s *Sim) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Sim) dispatchLoop(ctx context.Context) {
	defer s.done.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		wait := time.Duration(-1)
		if !s.hook.Manual {
			wait = s.dispatch(ctx, false)
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-s.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// dispatch forms batches from queued events and makes the attempts that
// are due (all of them when force). It returns how long until more work is
// due, or -1 if none is.
func (s *Sim) dispatch(ctx context.Context, force bool) time.Duration {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()

	s.mu.Lock()
	now := s.wall()
	if len(s.outbox) > 0 && (force || !now.Before(s.firstOut.Add(s.hook.Linger))) {
		s.formBatches(now)
	}
	var due []*Delivery
	for _, d := range s.delivs {
		if d.State == DeliveryPending && !d.parked && (force || !now.Before(d.next)) {
			due = append(due, d)
		}
	}
	s.mu.Unlock()

	for _, d := range due {
		if ctx.Err() != nil {
			return -1
		}
		s.attempt(ctx, d)
		// A held-back delivery goes out once a later one has overtaken it.
		for _, p := range s.parkedBefore(d) {
			s.attempt(ctx, p)
		}
	}
	s.mu.Lock()
	now = s.wall()
	var expired []*Delivery
	for _, d := range s.delivs {
		if d.parked && (force || !now.Before(d.parkedAt.Add(s.hook.ReorderHold))) {
			d.parked = false
			expired = append(expired, d)
		}
	}
	s.mu.Unlock()
	for _, d := range expired {
		if ctx.Err() != nil {
			return -1
		}
		s.attempt(ctx, d)
	}
	return s.nextDispatch()
}

// parkedBefore unparks and returns the held-back deliveries created before d.
func (s *Sim) parkedBefore(d *Delivery) []*Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Delivery
	for _, p := range s.delivs {
		if p == d {
			break
		}
		if p.parked {
			p.parked = false
			out = append(out, p)
		}
	}
	return out
}

// nextDispatch is how long until the dispatcher has work: a retry, a
// reorder hold running out, or lingering events to batch.
func (s *Sim) nextDispatch() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.wall()
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if len(s.outbox) > 0 {
		consider(s.firstOut.Add(s.hook.Linger))
	}
	for _, d := range s.delivs {
		switch {
		case d.parked:
			consider(d.parkedAt.Add(s.hook.ReorderHold))
		case d.State == DeliveryPending:
			consider(d.next)
		}
	}
	if next.IsZero() {
		return -1
	}
	return max(next.Sub(now), 0)
}

// formBatches turns the queued events into deliveries of at most BatchSize
// events each, deciding each one's faults. Callers hold s.mu.
func (s *Sim) formBatches(now time.Time) {
	for len(s.outbox) > 0 {
		n := min(len(s.outbox), s.hook.BatchSize)
		batch := s.outbox[:n:n]
		s.outbox = s.outbox[n:]
		d := &Delivery{WebhookID: s.newID(prefixWebhook), State: DeliveryPending, CreatedAt: now, next: now}
		wf := &s.faults.Webhook
		if s.fire(&wf.DropNext, wf.DropRate) {
			d.State = DeliveryDropped
			d.Faults = append(d.Faults, "dropped")
		}
		if s.fire(&wf.ReorderNext, wf.ReorderRate) {
			batch = slices.Clone(batch)
			slices.Reverse(batch)
			d.parked, d.parkedAt = d.State == DeliveryPending, now
			d.Faults = append(d.Faults, "reordered")
		}
		if s.fire(&wf.BadSignatureNext, wf.BadSignatureRate) {
			d.badSig = true
			d.Faults = append(d.Faults, "bad_signature")
		}
		if s.fire(&wf.DuplicateNext, wf.DuplicateRate) {
			d.duplicate = true
			d.Faults = append(d.Faults, "duplicated")
		}
		events := make([]Event, 0, len(batch))
		for _, ev := range batch {
			d.EventIDs = append(d.EventIDs, ev.ID)
			events = append(events, ev.clone())
		}
		body, err := json.Marshal(webhookBody{Events: events, Meta: webhookMeta{WebhookID: d.WebhookID}})
		if err != nil {
			s.log.Error("gcsim: encoding webhook", "err", err)
			continue
		}
		d.Body = body
		s.delivs = append(s.delivs, d)
	}
	s.outbox = nil
}

// attempt POSTs d once and records the outcome; a 2xx delivers it, and
// anything else schedules a retry with exponential backoff until
// MaxAttempts.
func (s *Sim) attempt(ctx context.Context, d *Delivery) {
	s.mu.Lock()
	if d.State != DeliveryPending {
		s.mu.Unlock()
		return
	}
	url, secret := s.hook.URL, s.hook.Secret
	bad := d.badSig && len(d.Attempts) == 0
	body, dup := d.Body, d.duplicate
	s.mu.Unlock()
	if url == "" {
		return
	}
	key := secret
	if bad {
		key = secret + "-not-the-secret"
	}
	sig := sign(key, body)
	at := s.wall()
	status, err := s.post(ctx, url, body, sig)

	s.mu.Lock()
	a := Attempt{At: at, URL: url, StatusCode: status, BadSignature: bad}
	if err != nil {
		a.Error = err.Error()
	}
	d.Attempts = append(d.Attempts, a)
	ok := err == nil && status >= 200 && status < 300
	switch {
	case ok:
		d.State = DeliveryDelivered
	case len(d.Attempts) >= s.hook.MaxAttempts:
		d.State = DeliveryFailed
		s.log.Warn("gcsim: webhook delivery failed", "webhook_id", d.WebhookID, "attempts", len(d.Attempts))
	default:
		d.next = s.wall().Add(s.backoff(len(d.Attempts)))
	}
	s.mu.Unlock()
	if !ok || !dup {
		return
	}
	at = s.wall()
	status, err = s.post(ctx, url, body, sig)
	a = Attempt{At: at, URL: url, StatusCode: status, Duplicate: true}
	if err != nil {
		a.Error = err.Error()
	}
	s.mu.Lock()
	d.Attempts = append(d.Attempts, a)
	s.mu.Unlock()
}

// backoff is the wait after the n-th failed attempt: RetryBase doubling,
// at most RetryMax.
func (s *Sim) backoff(n int) time.Duration {
	d := s.hook.RetryBase
	for i := 1; i < n && d < s.hook.RetryMax; i++ {
		d *= 2
	}
	return min(d, s.hook.RetryMax)
}

func (s *Sim) post(ctx context.Context, url string, body []byte, sig string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", contentTypeJSON)
	req.Header.Set("Origin", webhookOrigin)
	req.Header.Set("User-Agent", webhookUserAgent)
	req.Header.Set("Webhook-Signature", sig)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}
