package gcmsg_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcmsg"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

func TestSubject(t *testing.T) {
	tests := []struct{ resource, action, want string }{
		{"payments", "confirmed", "mlc.gc.payments.confirmed"},
		{"mandates", "customer_approval_granted", "mlc.gc.mandates.customer_approval_granted"},
		{"", "", "mlc.gc.unknown.unknown"},
		{"Billing.Requests", "created >now*", "mlc.gc.billing_requests.created__now_"},
	}
	for _, tc := range tests {
		if got := gcmsg.Subject(gocardless.Event{ResourceType: tc.resource, Action: tc.action}); got != tc.want {
			t.Errorf("Subject(%q, %q) = %q, want %q", tc.resource, tc.action, got, tc.want)
		}
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
