package gcsim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/testsupport/await"
)

// control calls the control API, which needs no token.
func control(t *testing.T, srv *gcsim.Server, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+"/_sim/"+path, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestControlAPI(t *testing.T) {
	rc := newReceiver(t)
	srv := start(t, withHook(rc, manual))
	a := newAPI(t, srv)
	f := gbCustomer(t, a, "ctl@example.com", "Control")

	status, body := control(t, srv, "GET", "clock", "")
	var clock gcsim.ClockState
	if err := json.Unmarshal(body, &clock); err != nil || status != 200 || clock.Mode != "manual" || !clock.Now.Equal(gcsim.DefaultStart) {
		t.Fatalf("GET clock: %d %s", status, body)
	}
	if status, body = control(t, srv, "POST", "clock/advance", `{"by": "50h"}`); status != 200 {
		t.Fatalf("advance: %d %s", status, body)
	}
	if !srv.Now().Equal(gcsim.DefaultStart.Add(50 * time.Hour)) {
		t.Fatalf("clock at %v after advancing 50h", srv.Now())
	}
	if got := mandateByID(t, srv, f.mandate).Status; got != "active" {
		t.Fatalf("advancing through the control API left the mandate %s", got)
	}
	if status, _ = control(t, srv, "POST", "clock/advance?by=1h", ""); status != 200 || !srv.Now().Equal(gcsim.DefaultStart.Add(51*time.Hour)) {
		t.Fatalf("advance by query: %d, now %v", status, srv.Now())
	}

	rules := `[{"resource": "payments", "amount_suffix": "01", "outcome": "failed", "cause": "refer_to_payer"}]`
	if status, body = control(t, srv, "PUT", "scenarios", rules); status != 200 {
		t.Fatalf("PUT scenarios: %d %s", status, body)
	}
	if got := srv.Scenarios(); len(got) != 1 || got[0].Cause != "refer_to_payer" || got[0].AmountSuffix != "01" {
		t.Fatalf("scenarios %+v", got)
	}
	faults := `{"latency": "1ms", "rate_limit_next": 1, "rate_limit_retry_after": "2s", "webhook": {"drop_next": 1}}`
	if status, body = control(t, srv, "PUT", "faults", faults); status != 200 {
		t.Fatalf("PUT faults: %d %s", status, body)
	}
	if got := srv.Faults(); got.Latency != time.Millisecond || got.RateLimitNext != 1 || got.RateLimitRetryAfter != 2*time.Second ||
		got.Webhook.DropNext != 1 {
		t.Fatalf("faults %+v", got)
	}
	_, body = control(t, srv, "GET", "faults", "")
	var back gcsim.Faults
	if err := json.Unmarshal(body, &back); err != nil || back != srv.Faults() {
		t.Fatalf("GET faults does not round-trip: %s", body)
	}
	if r := a.do("GET", "/customers", nil); r.status != 429 || r.header.Get("Retry-After") != "2" {
		t.Fatalf("injected 429: %d %v", r.status, r.header)
	}

	if status, body = control(t, srv, "POST", "webhooks/flush", ""); status != 200 {
		t.Fatalf("flush: %d %s", status, body)
	}
	var ds []gcsim.Delivery
	_, body = control(t, srv, "GET", "webhooks?state=dropped", "")
	if err := json.Unmarshal(body, &ds); err != nil || len(ds) != 1 || len(ds[0].EventIDs) != 3 {
		t.Fatalf("dropped deliveries: %s", body)
	}

	if status, _ = control(t, srv, "POST", "tokens", `{"token": "`+testToken+`", "active": false}`); status != 200 {
		t.Fatal("revoking the token failed")
	}
	wantErr{status: 401, typ: "invalid_api_usage", reason: "access_token_not_active"}.check(t, a.do("GET", "/customers", nil))
	control(t, srv, "POST", "tokens", `{"token": "`+testToken+`", "active": true}`)

	if status, body = control(t, srv, "PUT", "webhooks/endpoint", `{"url": "", "secret": ""}`); status != 200 {
		t.Fatalf("endpoint: %d %s", status, body)
	}
	var st gcsim.State
	_, body = control(t, srv, "GET", "state", "")
	if err := json.Unmarshal(body, &st); err != nil || st.Counts["mandates"] != 1 || st.WebhookURLSet {
		t.Fatalf("state: %s", body)
	}
	if status, body = control(t, srv, "POST", "reset", ""); status != 200 {
		t.Fatalf("reset: %d %s", status, body)
	}
	if len(srv.Mandates()) != 0 || len(srv.Events()) != 0 || len(srv.Deliveries()) != 0 || len(srv.Creditors()) != 1 {
		t.Fatal("reset kept resources")
	}
	wantErr{status: 404, typ: "invalid_api_usage", reason: "resource_not_found"}.check(t, a.do("GET", "/mandates/"+f.mandate, nil))

	for _, tc := range []struct{ method, path, body string }{
		{"PUT", "scenarios", `[{"resource": "payments", "outcome": "exploded"}]`},
		{"PUT", "scenarios", `[{"resource": "payments", "outcome": "failed", "cause": "bank_holiday"}]`},
		{"PUT", "scenarios", `[{"resource": "mandates", "amount_suffix": "01", "outcome": "failed"}]`},
		{"PUT", "scenarios", `[{"resource": "payments", "email": "[", "outcome": "failed"}]`},
		{"PUT", "faults", `{"server_error_rate": 2}`},
		{"PUT", "faults", `{"latency": "soon"}`},
		{"POST", "clock/advance", `{"by": "-1h"}`},
		{"POST", "tokens", `{}`},
	} {
		if status, body := control(t, srv, tc.method, tc.path, tc.body); status != 400 {
			t.Fatalf("%s %s %s: %d %s, want 400", tc.method, tc.path, tc.body, status, body)
		}
	}
	if status, _ := control(t, srv, "GET", "nothing", ""); status != 404 {
		t.Fatalf("unknown control endpoint: %d", status)
	}
}

// A clock that moves by itself has its transitions applied in the
// background, without any request.
func TestMovingClock(t *testing.T) {
	clock := gcsim.NewScaledClock(gcsim.DefaultStart, 200000) // ~2.3 simulated days per wall second
	srv := start(t, func(o *gcsim.Options) { o.Clock = clock; o.TickInterval = 5 * time.Millisecond })
	a := newAPI(t, srv)
	f := gbCustomer(t, a, "m@example.com", "Moving")
	await.Until(t, 10*time.Second, "the mandate to activate on its own", func() bool {
		for _, m := range srv.Mandates() {
			if m.ID == f.mandate {
				return m.Status == "active"
			}
		}
		return false
	})
	before := clock.Now()
	clock.Advance(48 * time.Hour)
	if d := clock.Now().Sub(before); d < 48*time.Hour {
		t.Fatalf("advancing a scaled clock moved it %v", d)
	}
	real := gcsim.NewRealClock()
	if d := time.Until(real.Now()); d > time.Second || d < -time.Second {
		t.Fatalf("real clock is %v off the wall clock", d)
	}
}
