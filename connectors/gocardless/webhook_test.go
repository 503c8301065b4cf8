package gocardless_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
)

// Vectors computed independently when the test was written:
//
//	printf '{"events":[]}' | openssl dgst -sha256 -hmac ElfHelper
//	printf '{"events":[]}\n' | openssl dgst -sha256 -hmac ElfHelper
//
// and RFC 4231 test case 2 for HMAC-SHA256.
var signVectors = []struct {
	name   string
	secret string
	body   string
	want   string
}{
	{"empty events", "ElfHelper", `{"events":[]}`, "ad6978b1b70384ee8d82ca4e96428e99492c3c779725570f9a59863adcdec46b"},
	{"trailing newline is signed", "ElfHelper", "{\"events\":[]}\n", "dc29e50d61fa370c9538d2dd2e63a8812baa42f9da25d97bee1ab8f506dacf78"},
	{"rfc4231 case 2", "Jefe", "what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
}

func TestSign(t *testing.T) {
	for _, tc := range signVectors {
		t.Run(tc.name, func(t *testing.T) {
			if got := gocardless.Sign([]byte(tc.secret), []byte(tc.body)); got != tc.want {
				t.Errorf("Sign = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestVerifySignature(t *testing.T) {
	const (
		body = `{"events":[]}`
		good = "ad6978b1b70384ee8d82ca4e96428e99492c3c779725570f9a59863adcdec46b"
	)
	secret := []byte("ElfHelper")
	tests := []struct {
		name    string
		body    string
		header  string
		secrets [][]byte
		want    error
	}{
		{"valid", body, good, [][]byte{secret}, nil},
		{"uppercase hex accepted", body, strings.ToUpper(good), [][]byte{secret}, nil},
		{"surrounding space ignored", body, " " + good + " ", [][]byte{secret}, nil},
		{"tampered body", `{"events":[{}]}`, good, [][]byte{secret}, gocardless.ErrBadSignature},
		{"trailing newline added to body", body + "\n", good, [][]byte{secret}, gocardless.ErrBadSignature},
		{"wrong secret", body, good, [][]byte{[]byte("ElfHelpers")}, gocardless.ErrBadSignature},
		{"empty header", body, "", [][]byte{secret}, gocardless.ErrMissingSignature},
		{"blank header", body, "   ", [][]byte{secret}, gocardless.ErrMissingSignature},
		{"header one byte short", body, good[:62], [][]byte{secret}, gocardless.ErrBadSignature},
		{"header one byte long", body, good + "00", [][]byte{secret}, gocardless.ErrBadSignature},
		{"odd-length header", body, good[:63], [][]byte{secret}, gocardless.ErrBadSignature},
		{"non-hex header", body, strings.Repeat("zz", 32), [][]byte{secret}, gocardless.ErrBadSignature},
		{"sha256= prefix is not the format", body, "sha256=" + good, [][]byte{secret}, gocardless.ErrBadSignature},
		{"rotation: new secret first", body, good, [][]byte{[]byte("new"), secret}, nil},
		{"rotation: old secret first", body, good, [][]byte{secret, []byte("new")}, nil},
		{"rotation: neither", body, good, [][]byte{[]byte("a"), []byte("b")}, gocardless.ErrBadSignature},
		{"no secrets", body, good, nil, gocardless.ErrBadSignature},
		{"empty secret never verifies", body, gocardless.Sign(nil, []byte(body)), [][]byte{{}}, gocardless.ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := gocardless.VerifySignature([]byte(tc.body), tc.header, tc.secrets...)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("VerifySignature = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	secret := []byte("s3cr3t-with-bytes\x00\xff")
	for _, body := range []string{"", "{}", `{"events":[{"id":"EV1"}]}` + "\r\n"} {
		sig := gocardless.Sign(secret, []byte(body))
		if sig != strings.ToLower(sig) || len(sig) != 64 {
			t.Fatalf("signature %q is not 64 lowercase hex digits", sig)
		}
		if err := gocardless.VerifySignature([]byte(body), sig, secret); err != nil {
			t.Errorf("body %q: own signature refused: %v", body, err)
		}
	}
}

const webhookBody = `{
  "events": [
    {
      "id": "EV123",
      "created_at": "2014-08-04T12:00:00.000Z",
      "action": "failed",
      "resource_type": "payments",
      "links": {"payment": "PM123", "parent_event": null},
      "details": {
        "origin": "bank",
        "cause": "insufficient_funds",
        "description": "The customer's account had insufficient funds to make this payment.",
        "scheme": "bacs",
        "reason_code": "ARUDD-0",
        "will_attempt_retry": true,
        "bank_account_id": "BA123"
      },
      "metadata": {"erp": "ifs"},
      "resource_metadata": {"invoice": "INV-1", "n": 7},
      "source": {"type": "app", "name": "future field"}
    },
    {"id":"EV124","created_at":"2014-08-04T12:00:01Z","action":"teleported","resource_type":"spaceships","links":{"spaceship":"SS1"}}
  ],
  "meta": {"webhook_id": "WB123"}
}`

func TestParseWebhook(t *testing.T) {
	w, err := gocardless.ParseWebhook([]byte(webhookBody))
	if err != nil {
		t.Fatal(err)
	}
	if w.WebhookID != "WB123" || len(w.Events) != 2 {
		t.Fatalf("webhook %q with %d events, want WB123 with 2", w.WebhookID, len(w.Events))
	}
	e := w.Events[0]
	want := gocardless.Event{
		ID:           "EV123",
		CreatedAt:    time.Date(2014, 8, 4, 12, 0, 0, 0, time.UTC),
		ResourceType: "payments",
		Action:       "failed",
		Links:        map[string]string{"payment": "PM123"},
		Details: gocardless.EventDetails{
			Origin:           "bank",
			Cause:            "insufficient_funds",
			Description:      "The customer's account had insufficient funds to make this payment.",
			Scheme:           "bacs",
			ReasonCode:       "ARUDD-0",
			WillAttemptRetry: true,
			BankAccountID:    "BA123",
		},
		Metadata:         map[string]string{"erp": "ifs"},
		ResourceMetadata: map[string]string{"invoice": "INV-1", "n": "7"},
	}
	got := e
	got.Raw = nil
	if !eventsEqual(got, want) {
		t.Errorf("event decoded as\n%+v\nwant\n%+v", got, want)
	}
	// Raw is the exact original object, future fields included.
	start := strings.Index(webhookBody, `{
      "id": "EV123"`)
	end := strings.Index(webhookBody, `"future field"}
    }`) + len(`"future field"}
    }`)
	if !bytes.Equal(e.Raw, []byte(webhookBody[start:end])) {
		t.Errorf("Raw is not the original bytes:\n%s", e.Raw)
	}
	// The unknown event type is kept, not rejected.
	u := w.Events[1]
	if u.ID != "EV124" || u.ResourceType != "spaceships" || u.Action != "teleported" || u.Links["spaceship"] != "SS1" {
		t.Errorf("unknown event type decoded as %+v", u)
	}
	var raw map[string]any
	if err := json.Unmarshal(u.Raw, &raw); err != nil || raw["id"] != "EV124" {
		t.Errorf("unknown event's Raw = %s (%v)", u.Raw, err)
	}
}

func eventsEqual(a, b gocardless.Event) bool {
	eq := func(x, y map[string]string) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || w != v {
				return false
			}
		}
		return true
	}
	return a.ID == b.ID && a.CreatedAt.Equal(b.CreatedAt) && a.ResourceType == b.ResourceType &&
		a.Action == b.Action && a.Details == b.Details && eq(a.Links, b.Links) &&
		eq(a.Metadata, b.Metadata) && eq(a.ResourceMetadata, b.ResourceMetadata) && bytes.Equal(a.Raw, b.Raw)
}

func TestParseWebhookRefuses(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"empty body", ""},
		{"not json", "events=1"},
		{"truncated", `{"events":[{"id":"EV1"}`},
		{"top level array", `[{"id":"EV1"}]`},
		{"events missing", `{"meta":{"webhook_id":"WB1"}}`},
		{"events null", `{"events":null}`},
		{"events an object", `{"events":{"id":"EV1"}}`},
		{"events a string", `{"events":"EV1"}`},
		{"event not an object", `{"events":["EV1"]}`},
		{"event null", `{"events":[null]}`},
		{"event without id", `{"events":[{"id":"EV1"},{"action":"created"}]}`},
		{"bad created_at", `{"events":[{"id":"EV1","created_at":"yesterday"}]}`},
		{"links not an object", `{"events":[{"id":"EV1","links":"PM1"}]}`},
		{"trailing garbage", `{"events":[]}x`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := gocardless.ParseWebhook([]byte(tc.body))
			if !errors.Is(err, gocardless.ErrMalformedWebhook) {
				t.Errorf("ParseWebhook = %+v, %v; want ErrMalformedWebhook", w, err)
			}
		})
	}
}

func TestParseWebhookEmptyBatch(t *testing.T) {
	w, err := gocardless.ParseWebhook([]byte(`{"events":[],"meta":{"webhook_id":"WB9"}}`))
	if err != nil || w.WebhookID != "WB9" || len(w.Events) != 0 {
		t.Errorf("ParseWebhook = %+v, %v", w, err)
	}
}

func FuzzParseWebhook(f *testing.F) {
	f.Add([]byte(webhookBody))
	f.Add([]byte(`{"events":[]}`))
	f.Add([]byte(`{"events":[{"id":"EV1","links":{"a":1}}]}`))
	f.Add([]byte(`{"events":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		w, err := gocardless.ParseWebhook(body)
		if err != nil {
			if !errors.Is(err, gocardless.ErrMalformedWebhook) {
				t.Fatalf("error %v does not wrap ErrMalformedWebhook", err)
			}
			return
		}
		for _, e := range w.Events {
			if e.ID == "" {
				t.Fatal("accepted an event without id")
			}
			if !json.Valid(e.Raw) || !bytes.Contains(body, e.Raw) {
				t.Fatalf("Raw %q is not a piece of the body", e.Raw)
			}
		}
	})
}
