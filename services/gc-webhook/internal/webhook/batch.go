package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	fastjson "github.com/goccy/go-json"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
)

// Bounds on an event, checked before any of it reaches a NATS subject or
// header. Each follows what GoCardless documents, or, where it is silent,
// the shape of every value it sends, with room to spare:
//
//   - id: "Unique identifier, beginning with "EV"" (Event.id in
//     gocardless/gocardless-pro-java, src/main/java/com/gocardless/resources/Event.java);
//     GoCardless ids are the prefix and upper-case alphanumerics (EV000A1B2C3D4E).
//     It becomes the Nats-Msg-Id.
//   - resource_type and action: lower-case words joined by "_" (payments,
//     billing_requests; customer_approval_granted), per the event type lists of
//     the GoCardless API reference ("Event types"). They become subject tokens.
//   - links: names like payment, parent_event; values are resource ids.
//   - metadata and resource_metadata: "Up to 3 keys are permitted, with key
//     names up to 50 characters and values up to 500 characters" (every
//     metadata field of the same resources).
//   - the event as a whole: GoCardless events are about a kilobyte;
//     maxEventBytes keeps each far below NATS's max payload.
var (
	eventIDPattern   = regexp.MustCompile(`^EV[0-9A-Za-z]{1,62}$`)
	webhookIDPattern = regexp.MustCompile(`^WB[0-9A-Za-z]{1,62}$`)
	wordPattern      = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	linkIDPattern    = regexp.MustCompile(`^[0-9A-Za-z_-]{1,64}$`)
)

const (
	maxEventBytes      = 64 << 10
	maxLinks           = 64
	maxMetadataKeys    = 3
	maxMetadataKeyLen  = 50
	maxMetadataValLen  = 500
	maxDetailsFieldLen = 2000
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
		if err := json.Unmarshal(w.Meta.WebhookID, &id); err == nil && webhookIDPattern.MatchString(id) {
			b.webhookID = id
		} else {
			b.badWebhookID = true
		}
	}
	b.events = make([]gocardless.Event, 0, len(w.Events))
	for _, raw := range w.Events {
		if len(raw) > maxEventBytes {
			b.rejected = append(b.rejected, rejectedEvent{raw: raw, reason: fmt.Sprintf("event of %d bytes exceeds %d", len(raw), maxEventBytes)})
			continue
		}
		var e gocardless.Event
		if err := e.UnmarshalJSON(raw); err != nil { // fastjson, without encoding/json's extra scan
			b.rejected = append(b.rejected, rejectedEvent{raw: raw, reason: "event is not a readable JSON object"})
			continue
		}
		if err := checkEvent(e); err != nil {
			b.rejected = append(b.rejected, rejectedEvent{raw: raw, reason: err.Error()})
			continue
		}
		b.events = append(b.events, e)
	}
	return b, nil
}

// checkEvent says which bound e breaks. The message names the field and
// the bound, never the value: it becomes a header and a log line.
func checkEvent(e gocardless.Event) error {
	switch {
	case e.ID == "":
		return errors.New("event has no id")
	case !eventIDPattern.MatchString(e.ID):
		return fmt.Errorf("event id of %d bytes is not EV and 1 to 62 letters or digits", len(e.ID))
	case !wordPattern.MatchString(e.ResourceType):
		return fmt.Errorf("resource_type of %d bytes is not 1 to 64 lower-case letters, digits or _", len(e.ResourceType))
	case !wordPattern.MatchString(e.Action):
		return fmt.Errorf("action of %d bytes is not 1 to 64 lower-case letters, digits or _", len(e.Action))
	case len(e.Links) > maxLinks:
		return fmt.Errorf("%d links, at most %d", len(e.Links), maxLinks)
	}
	for k, v := range e.Links {
		if !wordPattern.MatchString(k) {
			return fmt.Errorf("a link name of %d bytes is not 1 to 64 lower-case letters, digits or _", len(k))
		}
		if !linkIDPattern.MatchString(v) {
			return fmt.Errorf("link %s: id of %d bytes is not 1 to 64 letters, digits, _ or -", k, len(v))
		}
	}
	for field, m := range map[string]map[string]string{"metadata": e.Metadata, "resource_metadata": e.ResourceMetadata} {
		if len(m) > maxMetadataKeys {
			return fmt.Errorf("%s has %d keys, at most %d", field, len(m), maxMetadataKeys)
		}
		for k, v := range m {
			if len([]rune(k)) > maxMetadataKeyLen || len([]rune(v)) > maxMetadataValLen {
				return fmt.Errorf("%s: a key over %d or a value over %d characters", field, maxMetadataKeyLen, maxMetadataValLen)
			}
		}
	}
	d := e.Details
	for _, f := range []string{d.Origin, d.Cause, d.Description, d.Scheme, d.ReasonCode, d.NotRetriedReason, d.BankAccountID, d.Property} {
		if len(f) > maxDetailsFieldLen {
			return fmt.Errorf("a details field over %d bytes", maxDetailsFieldLen)
		}
	}
	return nil
}
