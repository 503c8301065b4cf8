package gcmsg

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/nats-io/nats.go"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/bus"
)

// Bounds on an event, checked before any of it reaches a NATS subject or
// header, whichever way it came (webhook or GET /events). Each follows what
// GoCardless documents, or, where it is silent, the shape of every value it
// sends, with room to spare:
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
//     MaxEventBytes keeps each far below NATS's max payload.
var (
	eventIDPattern   = regexp.MustCompile(`^EV[0-9A-Za-z]{1,62}$`)
	webhookIDPattern = regexp.MustCompile(`^WB[0-9A-Za-z]{1,62}$`)
	wordPattern      = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	linkIDPattern    = regexp.MustCompile(`^[0-9A-Za-z_-]{1,64}$`)
)

const (
	// MaxEventBytes bounds one event's JSON.
	MaxEventBytes      = 64 << 10
	maxLinks           = 64
	maxMetadataKeys    = 3
	maxMetadataKeyLen  = 50
	maxMetadataValLen  = 500
	maxDetailsFieldLen = 2000
)

// ErrOutOfBounds is wrapped by Check's errors: the event cannot become a
// message and is to be kept as a dead letter with its raw bytes instead.
var ErrOutOfBounds = errors.New("gocardless event out of bounds")

// ValidWebhookID reports whether id has the shape of a GoCardless webhook
// id ("WB" and letters or digits), fit for a header.
func ValidWebhookID(id string) bool { return webhookIDPattern.MatchString(id) }

// Check says which bound e breaks, wrapping ErrOutOfBounds. The message
// names the field and the bound, never the value: it becomes a header and
// a log line.
func Check(e gocardless.Event) error {
	if err := check(e); err != nil {
		return fmt.Errorf("%w: %w", ErrOutOfBounds, err)
	}
	return nil
}

func check(e gocardless.Event) error {
	switch {
	case len(e.Raw) > MaxEventBytes:
		return fmt.Errorf("event of %d bytes exceeds %d", len(e.Raw), MaxEventBytes)
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

// Headers on a refused event's dead letter, besides bus's Mlc-Dlq-*.
const (
	HeaderConnection = "Mlc-Gc-Connection"
	HeaderWebhookID  = "Mlc-Gc-Webhook-Id"
)

// Refused is an event that cannot become a message (Check or
// bus.CheckMsg refused it), with what is known of where it came from.
type Refused struct {
	Source     string // who read it: "gc-webhook", "events-catch-up"
	Connection string // "" for a single-account deployment
	WebhookID  string // "" unless it came in a webhook with a valid id
	Reason     string // why, without the refused value
	Raw        []byte // the event as received
}

// DeadLetter is the message that keeps r on the GoCardless stream's dead
// letters, where it becomes an exception for an operator rather than a
// batch (or a catch-up pass) that fails forever. maxPayload is the
// server's (bus.RejectedMsg cuts the raw bytes to fit).
func DeadLetter(r Refused, maxPayload int64) bus.Msg {
	hdr := nats.Header{}
	if r.Connection != "" {
		hdr.Set(HeaderConnection, r.Connection)
	}
	if r.WebhookID != "" {
		hdr.Set(HeaderWebhookID, r.WebhookID)
	}
	return bus.RejectedMsg(bus.Rejected{Stream: bus.StreamGC, Source: r.Source, Reason: r.Reason, Data: r.Raw, Header: hdr}, maxPayload)
}
