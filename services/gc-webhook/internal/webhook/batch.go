package webhook

import (
	"encoding/json"
	"errors"
	"fmt"

	fastjson "github.com/goccy/go-json"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcmsg"
)

// errTooManyEvents is returned by parseBatch for a batch over the limit.
var errTooManyEvents = errors.New("too many events")

// batch is a webhook body split into the events to publish and those
// refused, each with its raw bytes and the reason.
type batch struct {
	webhookID string // "" if absent or not of GoCardless's shape
	events    []gocardless.Event
	rejected  []rejectedEvent
	// badWebhookID is set when meta.webhook_id was present but malformed.
	badWebhookID bool
}

type rejectedEvent struct {
	raw    []byte
	reason string
}

// parseBatch reads a verified webhook body. Only a body that is not JSON
// or has no events array fails as a whole (400): GoCardless would send the
// same bytes again, and nothing in them can be kept apart. An event that
// cannot be read or is out of bounds is returned in rejected, so the rest
// of the batch is still accepted and the batch is never poison forever.
func parseBatch(body []byte, maxEvents int) (batch, error) {
	var w struct {
		Events []json.RawMessage `json:"events"`
		Meta   struct {
			WebhookID json.RawMessage `json:"webhook_id"`
		} `json:"meta"`
	}
	if err := fastjson.Unmarshal(body, &w); err != nil {
		return batch{}, fmt.Errorf("%w: %v", gocardless.ErrMalformedWebhook, err)
	}
	if w.Events == nil {
		return batch{}, fmt.Errorf("%w: events is not an array", gocardless.ErrMalformedWebhook)
	}
	if len(w.Events) > maxEvents {
		return batch{}, fmt.Errorf("%w: %d events, at most %d accepted", errTooManyEvents, len(w.Events), maxEvents)
	}
	var b batch
	if len(w.Meta.WebhookID) > 0 && string(w.Meta.WebhookID) != "null" {
		var id string
		if err := json.Unmarshal(w.Meta.WebhookID, &id); err == nil && gcmsg.ValidWebhookID(id) {
			b.webhookID = id
		} else {
			b.badWebhookID = true
		}
	}
	b.events = make([]gocardless.Event, 0, len(w.Events))
	for _, raw := range w.Events {
		if len(raw) > gcmsg.MaxEventBytes { // before decoding it
			b.rejected = append(b.rejected, rejectedEvent{raw: raw, reason: fmt.Sprintf("event of %d bytes exceeds %d", len(raw), gcmsg.MaxEventBytes)})
			continue
		}
		var e gocardless.Event
		if err := e.UnmarshalJSON(raw); err != nil { // fastjson, without encoding/json's extra scan
			b.rejected = append(b.rejected, rejectedEvent{raw: raw, reason: "event is not a readable JSON object"})
			continue
		}
		if err := gcmsg.Check(e); err != nil {
			b.rejected = append(b.rejected, rejectedEvent{raw: raw, reason: err.Error()})
			continue
		}
		b.events = append(b.events, e)
	}
	return b, nil
}
