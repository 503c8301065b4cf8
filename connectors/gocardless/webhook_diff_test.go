package gocardless_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
)

// FuzzParseWebhookMatchesStdlib holds ParseWebhook, which decodes with
// goccy/go-json for speed, to the answers encoding/json gives for the same
// body: the same bodies accepted, and the same values decoded from them.
func FuzzParseWebhookMatchesStdlib(f *testing.F) {
	for _, s := range []string{
		`{"events":[{"id":"EV1","created_at":"2026-11-21T10:00:00.000Z","resource_type":"payments","action":"confirmed","links":{"payment":"PM1"},"details":{"cause":"x","will_attempt_retry":true},"metadata":{"a":"b"}}],"meta":{"webhook_id":"WB1"}}`,
		`{"events":[]}`, `{"events":null}`, `{"events":{}}`, `{}`, `[]`, `{"events":[null]}`, `{"events":[{"id":""}]}`,
		`{"events":[{"id":"EV2","links":{"a":null,"b":1,"c":"x"}}]}`, `{"events":[{"id":"EV3","created_at":"yesterday"}]}`,
		`{"events":[{"id":"EV4"}],"events":[{"id":"EV5"}]}`, "{\"events\":[{\"id\":\"EV\xff\"}]}", `{"events":[{"id":"EV6","id":"EV7"}]}`,
		`{"events":[{"id":"EV8","details":{"will_attempt_retry":"yes"}}]}`, `{"events":[{"id":1}]}`, ` {"events":[{"id":"EV9"}]} `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotErr := gocardless.ParseWebhook(body)
		want, wantErr := stdlibParse(body)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("body %q: ParseWebhook err %v, encoding/json err %v", body, gotErr, wantErr)
		}
		if gotErr != nil {
			return
		}
		if got.WebhookID != want.WebhookID || len(got.Events) != len(want.Events) {
			t.Fatalf("body %q: got %+v, want %+v", body, got, want)
		}
		for i := range got.Events {
			g, w := got.Events[i], want.Events[i]
			if g.ID != w.ID || g.ResourceType != w.ResourceType || g.Action != w.Action || !g.CreatedAt.Equal(w.CreatedAt) ||
				g.Details != w.Details || !maps.Equal(g.Links, w.Links) || !maps.Equal(g.Metadata, w.Metadata) ||
				!maps.Equal(g.ResourceMetadata, w.ResourceMetadata) || !bytes.Equal(g.Raw, w.Raw) {
				t.Fatalf("body %q event %d:\n got %+v\nwant %+v", body, i, g, w)
			}
		}
	})
}

// stdlibParse is ParseWebhook written with encoding/json alone.
func stdlibParse(body []byte) (*gocardless.Webhook, error) {
	var w struct {
		Events []json.RawMessage `json:"events"`
		Meta   struct {
			WebhookID string `json:"webhook_id"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, err
	}
	if w.Events == nil {
		return nil, gocardless.ErrMalformedWebhook
	}
	out := &gocardless.Webhook{WebhookID: w.Meta.WebhookID}
	for _, raw := range w.Events {
		var e struct {
			ID           string          `json:"id"`
			CreatedAt    time.Time       `json:"created_at"`
			ResourceType string          `json:"resource_type"`
			Action       string          `json:"action"`
			Links        map[string]any  `json:"links"`
			Details      json.RawMessage `json:"details"`
			Metadata     map[string]any  `json:"metadata"`
			ResMeta      map[string]any  `json:"resource_metadata"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, err
		}
		var d struct {
			Origin           string `json:"origin"`
			Cause            string `json:"cause"`
			Description      string `json:"description"`
			Scheme           string `json:"scheme"`
			ReasonCode       string `json:"reason_code"`
			WillAttemptRetry bool   `json:"will_attempt_retry"`
			NotRetriedReason string `json:"not_retried_reason"`
			BankAccountID    string `json:"bank_account_id"`
			Property         string `json:"property"`
		}
		if len(e.Details) > 0 {
			if err := json.Unmarshal(e.Details, &d); err != nil {
				return nil, err
			}
		}
		if e.ID == "" {
			return nil, gocardless.ErrMalformedWebhook
		}
		out.Events = append(out.Events, gocardless.Event{
			ID: e.ID, CreatedAt: e.CreatedAt, ResourceType: e.ResourceType, Action: e.Action,
			Links: lenient(e.Links), Metadata: lenient(e.Metadata), ResourceMetadata: lenient(e.ResMeta),
			Details: gocardless.EventDetails(d), Raw: raw,
		})
	}
	return out, nil
}

// lenient mirrors the package's handling of non-string values: nulls
// dropped, other scalars kept as their JSON text.
func lenient(m map[string]any) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case nil:
		case string:
			out[k] = v
		default:
			b, _ := json.Marshal(v)
			out[k] = string(b)
		}
	}
	return out
}
