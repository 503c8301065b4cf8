package gcmsg_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcmsg"
	"github.com/ml-connector/ml-connector/platform/bus"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

func TestSubject(t *testing.T) {
	tests := []struct{ resource, action, want string }{
		{"payments", "confirmed", "mlc.gc.payments.confirmed"},
		{"mandates", "customer_approval_granted", "mlc.gc.mandates.customer_approval_granted"},
	}
	for _, tc := range tests {
		if got := gcmsg.Subject(gocardless.Event{ResourceType: tc.resource, Action: tc.action}); got != tc.want {
			t.Errorf("Subject(%q, %q) = %q, want %q", tc.resource, tc.action, got, tc.want)
		}
	}
}

// Every bound refuses, before any subject or id is built; the error names
// the field and never quotes the value.
func TestBusMsgRefusesEventsOutOfBounds(t *testing.T) {
	ok := func() gocardless.Event {
		return gocardless.Event{ID: "EV0123ABC", ResourceType: "billing_requests", Action: "fulfilled",
			Links: map[string]string{"billing_request": "BRQ123"}, Metadata: map[string]string{"k": "v"}}
	}
	if _, err := gcmsg.BusMsg(ok(), gcmsg.Envelope{}); err != nil {
		t.Fatalf("a well-formed event: %v", err)
	}
	tests := map[string]func(e *gocardless.Event){
		"no id":                  func(e *gocardless.Event) { e.ID = "" },
		"id not EV":              func(e *gocardless.Event) { e.ID = "PM0123" },
		"id with a dot":          func(e *gocardless.Event) { e.ID = "EV1.2" },
		"id too long":            func(e *gocardless.Event) { e.ID = "EV" + strings.Repeat("A", 63) },
		"resource_type wildcard": func(e *gocardless.Event) { e.ResourceType = "payments.>" },
		"resource_type upper":    func(e *gocardless.Event) { e.ResourceType = "Payments" },
		"empty action":           func(e *gocardless.Event) { e.Action = "" },
		"action with a space":    func(e *gocardless.Event) { e.Action = "paid out" },
		"link name":              func(e *gocardless.Event) { e.Links = map[string]string{"Pay ment": "PM1"} },
		"link id":                func(e *gocardless.Event) { e.Links = map[string]string{"payment": "PM 1"} },
		"too many links": func(e *gocardless.Event) {
			e.Links = map[string]string{}
			for i := range 65 {
				e.Links[fmt.Sprintf("l%d", i)] = "X1"
			}
		},
		"four metadata keys":    func(e *gocardless.Event) { e.Metadata = map[string]string{"a": "", "b": "", "c": "", "d": ""} },
		"metadata value of 501": func(e *gocardless.Event) { e.ResourceMetadata = map[string]string{"a": strings.Repeat("é", 501)} },
		"long details":          func(e *gocardless.Event) { e.Details.Description = strings.Repeat("x", 2001) },
		"event too large":       func(e *gocardless.Event) { e.Raw = make([]byte, gcmsg.MaxEventBytes+1) },
	}
	for name, breakIt := range tests {
		e := ok()
		breakIt(&e)
		_, err := gcmsg.BusMsg(e, gcmsg.Envelope{})
		if !errors.Is(err, gcmsg.ErrOutOfBounds) {
			t.Errorf("%s: err %v, want ErrOutOfBounds", name, err)
			continue
		}
		if strings.Contains(err.Error(), ">") || strings.Contains(err.Error(), "PM 1") || strings.Contains(err.Error(), "paid out") {
			t.Errorf("%s: error %q quotes the value", name, err)
		}
	}
	// Metadata is bounded in characters, as GoCardless counts them.
	e := ok()
	e.Metadata = map[string]string{strings.Repeat("é", 50): strings.Repeat("é", 500)}
	if err := gcmsg.Check(e); err != nil {
		t.Errorf("metadata at the documented limits: %v", err)
	}
}

func TestDeadLetterKeepsTheEvent(t *testing.T) {
	raw := []byte(`{"id":"EV1","resource_type":"payments.>"}`)
	m := gcmsg.DeadLetter(gcmsg.Refused{Source: "events-catch-up", Connection: "gc-main", Reason: "resource_type", Raw: raw}, 1<<20)
	if err := bus.CheckMsg(m, 1<<20); err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != string(raw) || m.Header.Get(gcmsg.HeaderConnection) != "gc-main" || m.Header.Get(gcmsg.HeaderWebhookID) != "" ||
		m.Header.Get(bus.HeaderDLQStream) != bus.StreamGC || m.Header.Get(bus.HeaderDLQConsumer) != "events-catch-up" {
		t.Errorf("dead letter %+v", m)
	}
}

func TestBusMsgKeepsEverything(t *testing.T) {
	raw := `{"id":"EV123","created_at":"2026-11-21T10:00:00.000Z","resource_type":"payments","action":"failed",` +
		`"links":{"payment":"PM1"},"details":{"origin":"bank","cause":"insufficient_funds","reason_code":"ARUDD-0",` +
		`"scheme":"bacs","will_attempt_retry":true},"metadata":{},"resource_metadata":{"erp":"ifs"},"future_field":{"x":1}}`
	wh, err := gocardless.ParseWebhook([]byte(`{"events":[` + raw + `],"meta":{"webhook_id":"WB1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	received := time.Date(2026, 11, 21, 10, 0, 1, 0, time.UTC)
	msg, err := gcmsg.BusMsg(wh.Events[0], gcmsg.Envelope{Connection: "gc-main", WebhookID: wh.WebhookID, Source: gcmsg.FromWebhook, ReceivedAt: received})
	if err != nil {
		t.Fatal(err)
	}
	if msg.ID != "EV123" || msg.Subject != "mlc.gc.payments.failed" {
		t.Errorf("id %q subject %q", msg.ID, msg.Subject)
	}
	var got mlcv1.GoCardlessEvent
	if err := proto.Unmarshal(msg.Data, &got); err != nil {
		t.Fatal(err)
	}
	if got.GetSchemaVersion() != 1 || got.GetEventId() != "EV123" || got.GetConnection() != "gc-main" || got.GetWebhookId() != "WB1" ||
		got.GetLinks()["payment"] != "PM1" || got.GetDetails().GetCause() != "insufficient_funds" || !got.GetDetails().GetWillAttemptRetry() ||
		got.GetResourceMetadata()["erp"] != "ifs" || got.GetSource() != mlcv1.GoCardlessEvent_SOURCE_WEBHOOK ||
		!got.GetReceivedAt().AsTime().Equal(received) || got.GetCreatedAt().AsTime().Format(time.RFC3339) != "2026-11-21T10:00:00Z" {
		t.Errorf("message lost a field: %v", &got)
	}
	if string(got.GetRawJson()) != raw {
		t.Errorf("raw json changed:\n%s\nwant\n%s", got.GetRawJson(), raw)
	}
}
