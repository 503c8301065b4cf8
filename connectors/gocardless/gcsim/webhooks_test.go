package gcsim_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/testsupport/await"
)

const hookSecret = "whsec_correct horse battery staple"

// received is one webhook request as the receiver saw it.
type received struct {
	webhookID string
	eventIDs  []string
	body      []byte
	signature string
	validSig  bool
	header    http.Header
}

// receiver is a webhook endpoint that checks signatures itself (HMAC-SHA256
// of the raw body, hex) and answers 498 to a bad one, like gc-webhook.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	got     []received
	respond func(n int) int // status for the n-th (0-based) valid request; default 204
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		mac := hmac.New(sha256.New, []byte(hookSecret))
		mac.Write(body)
		want := hex.EncodeToString(mac.Sum(nil))
		sig := req.Header.Get("Webhook-Signature")
		var parsed struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
			Meta struct {
				WebhookID string `json:"webhook_id"`
			} `json:"meta"`
		}
		if err := json.Unmarshal(body, &parsed); err != nil {
			w.WriteHeader(400)
			return
		}
		rec := received{webhookID: parsed.Meta.WebhookID, body: body, signature: sig,
			validSig: hmac.Equal([]byte(sig), []byte(want)), header: req.Header.Clone()}
		for _, e := range parsed.Events {
			rec.eventIDs = append(rec.eventIDs, e.ID)
		}
		r.mu.Lock()
		r.got = append(r.got, rec)
		valid := 0
		for _, g := range r.got {
			if g.validSig {
				valid++
			}
		}
		respond := r.respond
		r.mu.Unlock()
		switch {
		case !rec.validSig:
			w.WriteHeader(498)
		case respond != nil:
			w.WriteHeader(respond(valid - 1))
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func withHook(rc *receiver, mod func(*gcsim.WebhookOptions)) func(*gcsim.Options) {
	return func(o *gcsim.Options) {
		o.Webhook = gcsim.WebhookOptions{URL: rc.srv.URL, Secret: hookSecret, RetryBase: 10 * time.Millisecond}
		if mod != nil {
			mod(&o.Webhook)
		}
	}
}

func manual(w *gcsim.WebhookOptions) { w.Manual = true }

// seedPending adds n customers with pending mandates without events; a
// day later each mandate has been submitted, and two days after that it is
// active: 2n events.
func seedPending(t *testing.T, srv *gcsim.Server, n int) {
	t.Helper()
	var d gcsim.SeedData
	for i := range n {
		cu, ba, md := fmt.Sprintf("CU%012d", i), fmt.Sprintf("BA%012d", i), fmt.Sprintf("MD%012d", i)
		d.Customers = append(d.Customers, gcsim.Customer{ID: cu, GivenName: "Seed", FamilyName: fmt.Sprint(i)})
		d.BankAccounts = append(d.BankAccounts, gcsim.CustomerBankAccount{ID: ba, AccountHolderName: "Seed",
			CountryCode: "GB", Currency: "GBP", Links: gcsim.BankAccountLinks{Customer: cu}})
		d.Mandates = append(d.Mandates, gcsim.Mandate{ID: md, Status: "pending_submission",
			Links: gcsim.MandateLinks{CustomerBankAccount: ba}})
	}
	if err := srv.Seed(d); err != nil {
		t.Fatal(err)
	}
}

func eventIDs(srv *gcsim.Server) []string {
	var ids []string
	for _, e := range srv.Events() {
		ids = append(ids, e.ID)
	}
	return ids
}

func TestWebhookDelivery(t *testing.T) {
	rc := newReceiver(t)
	srv := start(t, withHook(rc, nil))
	a := newAPI(t, srv)
	gbCustomer(t, a, "w@example.com", "Hook")
	srv.Advance(3 * day)
	await.Until(t, 10*time.Second, "three mandate events delivered", func() bool {
		n := 0
		for _, r := range rc.requests() {
			n += len(r.eventIDs)
		}
		return n == 3
	})
	var delivered []string
	for _, r := range rc.requests() {
		if !r.validSig {
			t.Fatalf("signature %q does not verify", r.signature)
		}
		if r.header.Get("Origin") != "https://api.gocardless.com" || !strings.HasPrefix(r.header.Get("User-Agent"), "gocardless-webhook-service/") ||
			r.header.Get("Content-Type") != "application/json" || len(r.signature) != 64 || strings.ToLower(r.signature) != r.signature {
			t.Fatalf("webhook headers %v", r.header)
		}
		if !strings.HasPrefix(r.webhookID, "WB") || len(r.webhookID) != 14 {
			t.Fatalf("webhook_id %q", r.webhookID)
		}
		// Each event is exactly what GET /events/{id} serves.
		var body struct {
			Events []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		for i, raw := range body.Events {
			api := a.do("GET", "/events/"+r.eventIDs[i], nil)
			var wantEv, gotEv map[string]any
			_ = json.Unmarshal(raw, &gotEv)
			wantEv = api.body["events"].(map[string]any)
			if fmt.Sprint(gotEv) != fmt.Sprint(wantEv) {
				t.Fatalf("webhook event %s differs from the API's:\n%v\n%v", r.eventIDs[i], gotEv, wantEv)
			}
		}
		delivered = append(delivered, r.eventIDs...)
	}
	same(t, "delivered events", delivered, eventIDs(srv))
	for _, d := range srv.Deliveries() {
		if d.State != gcsim.DeliveryDelivered || len(d.Attempts) != 1 || d.Attempts[0].StatusCode != 204 {
			t.Fatalf("delivery %+v", d)
		}
	}
}

func TestWebhookBatching(t *testing.T) {
	cases := []struct {
		batch int
		want  []int
	}{
		{0, []int{250, 250, 100}}, // the default, GoCardless's 250
		{100, []int{100, 100, 100, 100, 100, 100}},
		{7, nil}, // 600/7: 85 of 7 and one of 5
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint("batch ", tc.batch), func(t *testing.T) {
			rc := newReceiver(t)
			srv := start(t, withHook(rc, func(w *gcsim.WebhookOptions) { w.Manual = true; w.BatchSize = tc.batch }))
			seedPending(t, srv, 300)
			srv.Advance(3 * day)
			if err := srv.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			var sizes []int
			var delivered []string
			for _, r := range rc.requests() {
				sizes = append(sizes, len(r.eventIDs))
				delivered = append(delivered, r.eventIDs...)
			}
			want := tc.want
			if want == nil {
				for range 85 {
					want = append(want, 7)
				}
				want = append(want, 5)
			}
			if !slices.Equal(sizes, want) {
				t.Fatalf("batch sizes %v, want %v", sizes, want)
			}
			same(t, "events delivered once each, in order", delivered, eventIDs(srv))
		})
	}
}

func TestWebhookRetries(t *testing.T) {
	t.Run("non-2xx is retried with backoff", func(t *testing.T) {
		rc := newReceiver(t)
		rc.respond = func(n int) int {
			if n < 2 {
				return 500
			}
			return 204
		}
		srv := start(t, withHook(rc, nil))
		seedPending(t, srv, 1)
		srv.Advance(day)
		await.Until(t, 10*time.Second, "delivery", func() bool {
			d := srv.Deliveries()
			return len(d) == 1 && d[0].State == gcsim.DeliveryDelivered
		})
		d := srv.Deliveries()[0]
		var codes []int
		for _, at := range d.Attempts {
			codes = append(codes, at.StatusCode)
		}
		if !slices.Equal(codes, []int{500, 500, 204}) {
			t.Fatalf("attempts %v", codes)
		}
		if gap := d.Attempts[2].At.Sub(d.Attempts[1].At); gap < 20*time.Millisecond {
			t.Fatalf("second retry after %v, want the doubled backoff (20ms)", gap)
		}
		for _, r := range rc.requests() {
			if r.webhookID != d.WebhookID || string(r.body) != string(rc.requests()[0].body) {
				t.Fatal("a retry changed the request")
			}
		}
	})
	t.Run("attempts are bounded", func(t *testing.T) {
		rc := newReceiver(t)
		rc.respond = func(int) int { return 503 }
		srv := start(t, withHook(rc, func(w *gcsim.WebhookOptions) { w.MaxAttempts = 3 }))
		seedPending(t, srv, 1)
		srv.Advance(day)
		await.Until(t, 10*time.Second, "delivery to fail", func() bool {
			d := srv.Deliveries()
			return len(d) == 1 && d[0].State == gcsim.DeliveryFailed
		})
		time.Sleep(100 * time.Millisecond)
		if err := srv.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := len(rc.requests()); n != 3 {
			t.Fatalf("%d requests, want 3", n)
		}
	})
	t.Run("redirects are not followed", func(t *testing.T) {
		rc := newReceiver(t)
		redirect := httptest.NewServer(http.RedirectHandler(rc.srv.URL, http.StatusFound))
		defer redirect.Close()
		srv := start(t, withHook(rc, func(w *gcsim.WebhookOptions) { w.Manual = true; w.URL = redirect.URL }))
		seedPending(t, srv, 1)
		srv.Advance(day)
		if err := srv.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		d := srv.Deliveries()[0]
		if d.State != gcsim.DeliveryPending || d.Attempts[0].StatusCode != http.StatusFound || len(rc.requests()) != 0 {
			t.Fatalf("redirected delivery %+v, receiver saw %d", d, len(rc.requests()))
		}
		// Pointing the endpoint at the receiver delivers what is pending.
		srv.SetWebhookEndpoint(rc.srv.URL, hookSecret)
		if err := srv.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if d := srv.Deliveries()[0]; d.State != gcsim.DeliveryDelivered || len(rc.requests()) != 1 {
			t.Fatalf("after changing the endpoint: %+v", d)
		}
	})
	t.Run("events close together share a request", func(t *testing.T) {
		rc := newReceiver(t)
		srv := start(t, withHook(rc, func(w *gcsim.WebhookOptions) { w.Linger = 500 * time.Millisecond }))
		a := newAPI(t, srv)
		for i := range 3 {
			gbCustomer(t, a, fmt.Sprint(i, "@example.com"), "Linger")
		}
		await.Until(t, 10*time.Second, "delivery", func() bool { return len(rc.requests()) > 0 })
		if got := rc.requests(); len(got) != 1 || len(got[0].eventIDs) != 3 {
			t.Fatalf("requests %v, want one with 3 events", got)
		}
	})
}

func TestWebhookFaults(t *testing.T) {
	cases := []struct {
		name   string
		faults gcsim.WebhookFaults
		check  func(t *testing.T, srv *gcsim.Server, rc *receiver, all []string)
	}{
		{"duplicated", gcsim.WebhookFaults{DuplicateNext: 1}, func(t *testing.T, srv *gcsim.Server, rc *receiver, all []string) {
			got := rc.requests()
			if len(got) != 3 || got[0].webhookID != got[1].webhookID || string(got[0].body) != string(got[1].body) ||
				got[0].signature != got[1].signature || !got[1].validSig {
				t.Fatalf("want the first request twice, byte for byte, then the second: %d requests", len(got))
			}
			d := srv.Deliveries()[0]
			if !slices.Equal(d.Faults, []string{"duplicated"}) || len(d.Attempts) != 2 || !d.Attempts[1].Duplicate {
				t.Fatalf("delivery %+v", d)
			}
		}},
		{"dropped", gcsim.WebhookFaults{DropNext: 1}, func(t *testing.T, srv *gcsim.Server, rc *receiver, all []string) {
			got := rc.requests()
			if len(got) != 1 || !slices.Equal(got[0].eventIDs, all[2:]) {
				t.Fatalf("want only the second batch, got %d requests", len(got))
			}
			d := srv.Deliveries()[0]
			if d.State != gcsim.DeliveryDropped || len(d.Attempts) != 0 {
				t.Fatalf("dropped delivery %+v", d)
			}
			// The dropped events are still in GET /events.
			if len(srv.Events()) != 4 {
				t.Fatal("dropping lost events")
			}
		}},
		{"reordered", gcsim.WebhookFaults{ReorderNext: 1}, func(t *testing.T, srv *gcsim.Server, rc *receiver, all []string) {
			got := rc.requests()
			if len(got) != 2 || !slices.Equal(got[0].eventIDs, all[2:]) || !slices.Equal(got[1].eventIDs, []string{all[1], all[0]}) {
				t.Fatalf("want the second batch first, then the first reversed; got %v then %v (events %v)",
					got[0].eventIDs, got[len(got)-1].eventIDs, all)
			}
		}},
		{"bad signature", gcsim.WebhookFaults{BadSignatureNext: 1}, func(t *testing.T, srv *gcsim.Server, rc *receiver, all []string) {
			if err := srv.Flush(context.Background()); err != nil { // the retry
				t.Fatal(err)
			}
			got := rc.requests()
			if len(got) != 3 || got[0].validSig || !got[1].validSig || !got[2].validSig || got[0].webhookID != got[2].webhookID {
				t.Fatalf("want a badly signed request, the next batch, then the retry signed correctly")
			}
			d := srv.Deliveries()[0]
			if d.State != gcsim.DeliveryDelivered || d.Attempts[0].StatusCode != 498 || !d.Attempts[0].BadSignature ||
				d.Attempts[1].StatusCode != 204 {
				t.Fatalf("delivery %+v", d)
			}
		}},
		{"drop rate 1", gcsim.WebhookFaults{DropRate: 1}, func(t *testing.T, srv *gcsim.Server, rc *receiver, all []string) {
			if n := len(rc.requests()); n != 0 {
				t.Fatalf("%d requests got through", n)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t)
			srv := start(t, withHook(rc, func(w *gcsim.WebhookOptions) { w.Manual = true; w.BatchSize = 2 }),
				func(o *gcsim.Options) { o.Faults.Webhook = tc.faults })
			seedPending(t, srv, 2)
			srv.Advance(3 * day) // 2 submitted, then 2 active: two batches of two
			if err := srv.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			tc.check(t, srv, rc, eventIDs(srv))
		})
	}
}
