// Package gcmsg turns GoCardless events into the messages ml-connector puts
// on JetStream: one mlc.v1.GoCardlessEvent per event, on the subject
// mlc.gc.<resource_type>.<action>, with the event id as Nats-Msg-Id so that
// a webhook delivered twice, or an event seen both by webhook and by the
// GET /events catch-up, is stored once. Both ways in share Check: an event
// out of GoCardless's documented shapes never reaches a subject or header,
// and is kept as a dead letter by whoever read it.
package gcmsg

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/bus"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

// SchemaVersion of the GoCardlessEvent messages this package writes.
const SchemaVersion = 1

// Subject is where an event is published. Its resource type and action
// are single subject tokens only once Check accepted the event; BusMsg
// checks it first.
func Subject(e gocardless.Event) string {
	return "mlc.gc." + e.ResourceType + "." + e.Action
}

// Source says how an event reached us.
type Source = mlcv1.GoCardlessEvent_Source

const (
	FromWebhook   = mlcv1.GoCardlessEvent_SOURCE_WEBHOOK
	FromEventsAPI = mlcv1.GoCardlessEvent_SOURCE_EVENTS_API
)

// Envelope is what is known about an event besides the event itself.
type Envelope struct {
	Connection string // GoCardless connection name; "" for a single-account deployment
	WebhookID  string
	Source     Source
	ReceivedAt time.Time
}

// Message converts e into its contract message; the original JSON is kept
// whole in raw_json, so fields this version does not map are not lost.
func Message(e gocardless.Event, env Envelope) *mlcv1.GoCardlessEvent {
	m := &mlcv1.GoCardlessEvent{
		SchemaVersion:    SchemaVersion,
		Connection:       env.Connection,
		WebhookId:        env.WebhookID,
		EventId:          e.ID,
		ResourceType:     e.ResourceType,
		Action:           e.Action,
		Links:            e.Links,
		Metadata:         e.Metadata,
		ResourceMetadata: e.ResourceMetadata,
		RawJson:          e.Raw,
		Source:           env.Source,
		Details: &mlcv1.EventDetails{
			Origin:           e.Details.Origin,
			Cause:            e.Details.Cause,
			Description:      e.Details.Description,
			Scheme:           e.Details.Scheme,
			ReasonCode:       e.Details.ReasonCode,
			WillAttemptRetry: e.Details.WillAttemptRetry,
			BankAccountId:    e.Details.BankAccountID,
		},
	}
	if !e.CreatedAt.IsZero() {
		m.CreatedAt = timestamppb.New(e.CreatedAt)
	}
	if !env.ReceivedAt.IsZero() {
		m.ReceivedAt = timestamppb.New(env.ReceivedAt)
	}
	return m
}

// BusMsg is the JetStream message for e, or an error wrapping
// ErrOutOfBounds if e breaks a bound of Check.
func BusMsg(e gocardless.Event, env Envelope) (bus.Msg, error) {
	if err := Check(e); err != nil {
		return bus.Msg{}, err
	}
	data, err := proto.Marshal(Message(e, env))
	if err != nil {
		return bus.Msg{}, err
	}
	return bus.Msg{Subject: Subject(e), ID: e.ID, Data: data}, nil
}
