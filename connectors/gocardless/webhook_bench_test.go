package gocardless_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
)

// BenchmarkParseWebhook250 measures parsing one 250-event webhook body of
// realistic events (the ingress hot path).
func BenchmarkParseWebhook250(b *testing.B) {
	events := make([]string, 250)
	for i := range events {
		events[i] = fmt.Sprintf(`{"id":"EV%014d","created_at":"2026-11-21T10:00:00.000Z","resource_type":"payments","action":"paid_out",`+
			`"links":{"payment":"PM%012d","payout":"PO000123456789"},"details":{"origin":"gocardless","cause":"payment_paid_out",`+
			`"description":"The payment has been paid out by GoCardless.","scheme":"bacs","reason_code":""},`+
			`"metadata":{},"resource_metadata":{"erp":"ifs","company":"10","invoice":"INV-%010d"}}`, i, i, i)
	}
	body := []byte(`{"events":[` + strings.Join(events, ",") + `],"meta":{"webhook_id":"WB1"}}`)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := gocardless.ParseWebhook(body); err != nil {
			b.Fatal(err)
		}
	}
}
