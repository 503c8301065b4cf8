package gocardless

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	fastjson "github.com/goccy/go-json"
)

// SignatureHeader is the header GoCardless signs webhook bodies in.
const SignatureHeader = "Webhook-Signature"

// Errors of webhook verification and parsing. A receiver answers 498 for
// the signature errors and 400 for ErrMalformedWebhook.
var (
	ErrMissingSignature = errors.New("gocardless: webhook signature missing")
	ErrBadSignature     = errors.New("gocardless: webhook signature invalid")
	ErrMalformedWebhook = errors.New("gocardless: webhook body malformed")
)

// Sign returns the Webhook-Signature for body: the lowercase hex
// HMAC-SHA256 of the exact bytes, keyed with secret as-is.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks header (the Webhook-Signature value) against the
// HMAC of body under each secret in turn, so a secret can be rotated by
// accepting the old and the new one for a while. Comparison is constant
// time. Empty secrets are ignored: an empty key would let anyone sign.
func VerifySignature(body []byte, header string, secrets ...[]byte) error {
	header = strings.TrimSpace(header)
	if header == "" {
		return ErrMissingSignature
	}
	got, err := hex.DecodeString(header)
	if err != nil || len(got) != sha256.Size {
		return ErrBadSignature
	}
	ok := false
	for _, s := range secrets {
		if len(s) == 0 {
			continue
		}
		m := hmac.New(sha256.New, s)
		m.Write(body)
		// Every secret is tried, match or not, so timing does not say
		// which one matched.
		if hmac.Equal(m.Sum(nil), got) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	return nil
}

// Webhook is one delivery: a batch of events, possibly unrelated, out of
// order or already seen (dedupe by Event.ID).
type Webhook struct {
	WebhookID string // meta.webhook_id
	Events    []Event
}

// Event is something that happened to a resource. Fields GoCardless adds
// later, and event types this package does not know, are not lost: Raw
// holds the event's original JSON.
type Event struct {
	ID               string
	CreatedAt        time.Time
	ResourceType     string // payments, mandates, refunds, subscriptions, payouts, ...
	Action           string
	Links            map[string]string // payment, mandate, refund, parent_event, ...
	Details          EventDetails
	Metadata         map[string]string
	ResourceMetadata map[string]string
	// Raw is the event object exactly as received.
	Raw json.RawMessage
}

// EventDetails says why an event happened. Branch on Cause, not ReasonCode:
// reason codes differ by scheme, causes do not.
type EventDetails struct {
	Origin           string // bank, api, gocardless, customer
	Cause            string
	Description      string
	Scheme           string
	ReasonCode       string
	WillAttemptRetry bool
	NotRetriedReason string
	BankAccountID    string
	Property         string
}

// eventJSON is the wire form of an Event.
type eventJSON struct {
	ID           string    `json:"id"`
	CreatedAt    time.Time `json:"created_at"`
	ResourceType string    `json:"resource_type"`
	Action       string    `json:"action"`
	Links        stringMap `json:"links"`
	Details      struct {
		Origin           string `json:"origin"`
		Cause            string `json:"cause"`
		Description      string `json:"description"`
		Scheme           string `json:"scheme"`
		ReasonCode       string `json:"reason_code"`
		WillAttemptRetry bool   `json:"will_attempt_retry"`
		NotRetriedReason string `json:"not_retried_reason"`
		BankAccountID    string `json:"bank_account_id"`
		Property         string `json:"property"`
	} `json:"details"`
	Metadata         stringMap `json:"metadata"`
	ResourceMetadata stringMap `json:"resource_metadata"`
}

// UnmarshalJSON decodes an event and keeps its original bytes in Raw.
func (e *Event) UnmarshalJSON(b []byte) error {
	return e.decode(bytes.Clone(b))
}

// decode fills e from b, which e keeps as Raw: callers pass bytes they own.
func (e *Event) decode(b []byte) error {
	var w eventJSON
	if err := fastjson.Unmarshal(b, &w); err != nil {
		return err
	}
	d := w.Details
	*e = Event{
		ID:               w.ID,
		CreatedAt:        w.CreatedAt,
		ResourceType:     w.ResourceType,
		Action:           w.Action,
		Links:            w.Links,
		Metadata:         w.Metadata,
		ResourceMetadata: w.ResourceMetadata,
		Details: EventDetails{
			Origin:           d.Origin,
			Cause:            d.Cause,
			Description:      d.Description,
			Scheme:           d.Scheme,
			ReasonCode:       d.ReasonCode,
			WillAttemptRetry: d.WillAttemptRetry,
			NotRetriedReason: d.NotRetriedReason,
			BankAccountID:    d.BankAccountID,
			Property:         d.Property,
		},
		Raw: b,
	}
	return nil
}

// stringMap decodes a JSON object of strings leniently: null values are
// dropped and other scalars kept as their JSON text, so an unexpected type
// in links or metadata does not make a whole webhook unreadable.
type stringMap map[string]string

func (m *stringMap) UnmarshalJSON(b []byte) error {
	// Nearly always every value is a string: decode that directly, and take
	// the lenient path for anything else (a null would decode as "").
	if !bytes.Contains(b, []byte("null")) {
		var plain map[string]string
		if err := fastjson.Unmarshal(b, &plain); err == nil {
			*m = plain
			return nil
		}
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*m = nil
		return nil
	}
	out := make(stringMap, len(raw))
	for k, v := range raw {
		switch {
		case bytes.Equal(v, []byte("null")):
		case len(v) > 0 && v[0] == '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			out[k] = s
		default:
			out[k] = string(v)
		}
	}
	*m = out
	return nil
}

// ParseWebhook reads a webhook body. Unknown fields and event types are
// kept (see Event.Raw); a body that is not JSON, lacks an events array, or
// holds an event without an id is refused with an error wrapping
// ErrMalformedWebhook. Verify the signature first: parsing trusts nothing
// but does not authenticate.
func ParseWebhook(body []byte) (*Webhook, error) {
	// Events are first split out as raw slices (one validating pass over
	// the body, one copy each, which Raw keeps) and then decoded once each.
	// This is the hot path of webhook ingress, where encoding/json's
	// reflection cost most of a request's CPU; goccy/go-json decodes the
	// same types with the same semantics several times faster (see
	// docs/benchmarks.md), and the differential fuzz test holds it to
	// encoding/json's answers.
	var w struct {
		Events []json.RawMessage `json:"events"`
		Meta   struct {
			WebhookID string `json:"webhook_id"`
		} `json:"meta"`
	}
	if err := fastjson.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedWebhook, err)
	}
	if w.Events == nil { // absent or null; [] decodes to an empty, non-nil slice
		return nil, fmt.Errorf("%w: events is not an array", ErrMalformedWebhook)
	}
	events := make([]Event, len(w.Events))
	for i, raw := range w.Events {
		if err := events[i].decode(raw); err != nil {
			return nil, fmt.Errorf("%w: event %d: %v", ErrMalformedWebhook, i, err)
		}
		if events[i].ID == "" {
			return nil, fmt.Errorf("%w: event %d has no id", ErrMalformedWebhook, i)
		}
	}
	return &Webhook{WebhookID: w.Meta.WebhookID, Events: events}, nil
}
