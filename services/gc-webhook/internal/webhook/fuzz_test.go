package webhook_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/services/gc-webhook/internal/webhook"
)

// FuzzWebhook drives arbitrary bodies and signatures through the handler on
// a real JetStream. Whatever arrives, the answer is one of the documented
// statuses, and 204 is only given for a correctly signed body whose events
// array parses: nothing unsigned or unreadable is ever acknowledged to
// GoCardless (events out of bounds inside it are kept as dead letters), and
// the NATS connection survives whatever was sent.
func FuzzWebhook(f *testing.F) {
	seeds := []struct {
		body string
		sign bool
	}{
		{`{"events":[{"id":"EV1","resource_type":"payments","action":"confirmed","links":{"payment":"PM1"}}],"meta":{"webhook_id":"WB1"}}`, true},
		{`{"events":[{"id":"EV1","resource_type":"payments","action":"confirmed"}]}`, false},
		{`{"events":[]}`, true},
		{`{"events":{}}`, true},
		{`{"events":[{"resource_type":"payments"}]}`, true},
		{`{"events":[{"id":"EV2","links":{"a":1,"b":null},"metadata":[]}]}`, true},
		{"not json", true},
		{"", true},
		{`{"events":[{"id":"EV3","resource_type":"x.y","action":"*"}]}` + "\n", true},
	}
	for _, s := range seeds {
		f.Add([]byte(s.body), s.sign, "")
	}
	f.Add([]byte(`{"events":[]}`), false, "zz")
	st := newStack(f, webhook.Config{MaxBody: 64 << 10})
	f.Fuzz(func(t *testing.T, body []byte, sign bool, header string) {
		if sign {
			header = gocardless.Sign(secret, body)
		}
		// HTTP clients cannot send control characters in a header; keep
		// the rest of what the fuzzer chose.
		header = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, header)
		got := st.post(t, "/webhooks/gocardless", body, header)
		switch got {
		case http.StatusNoContent:
			if !sign {
				t.Fatalf("unsigned body accepted: %q with signature %q", body, header)
			}
			var w struct {
				Events []json.RawMessage `json:"events"`
			}
			if err := json.Unmarshal(body, &w); err != nil || w.Events == nil {
				t.Fatalf("unparsable body accepted: %q", body)
			}
		case 498, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if got == 498 && sign {
				t.Fatalf("correct signature refused for %q", body)
			}
		default:
			t.Fatalf("status %d for %q", got, body)
		}
		if !st.bus.Conn().IsConnected() {
			t.Fatalf("nats connection %s after %q", st.bus.Conn().Status(), body)
		}
	})
}
