package deadletter_test

import (
	"encoding/base64"
	"testing"

	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/deadletter"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// An event gc-webhook refused at the edge (issue #17: kept, never dropped)
// becomes one exception with its raw bytes, however often GoCardless
// re-sends the batch it came in.
func TestRejectedWebhookEventBecomesOneException(t *testing.T) {
	db := testsupport.Pool(t)
	h := deadletter.Handler{Ledger: ledger.New(db)}
	raw := []byte(`{"id":"EV1","resource_type":"` + "rrrr" + `","action":"created x"}`)
	m := bus.RejectedMsg(bus.Rejected{Stream: bus.StreamGC, Source: "gc-webhook", Reason: "action is not a word", Data: raw}, 1<<20)
	for range 2 {
		d := &bus.Delivery{Subject: m.Subject, ID: m.ID, Data: m.Data, Header: m.Header, Stream: bus.StreamDLQ}
		if err := h.Handle(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	var reason, data, subject string
	if err := db.QueryRow(t.Context(), `SELECT count(*), max(reason), max(detail->>'data'), max(detail->>'stream')
		FROM exceptions WHERE kind = 'dead_letter' AND aggregate_id = $1`, m.ID).Scan(&n, &reason, &data, &subject); err != nil {
		t.Fatal(err)
	}
	if n != 1 || reason != "action is not a word" || data != base64.StdEncoding.EncodeToString(raw) || subject != bus.StreamGC {
		t.Errorf("%d exceptions, reason %q, stream %q, data kept %v", n, reason, subject, data == base64.StdEncoding.EncodeToString(raw))
	}
}
