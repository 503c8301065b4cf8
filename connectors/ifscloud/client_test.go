package ifscloud_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/platform/breaker"
	"github.com/ml-connector/ml-connector/platform/retry"
)

func poll(c *ifscloud.Client) error {
	return c.Invoices(context.Background(), "10", ifscloud.Watermark{}, func(ifscloud.InvoicePage) error { return nil })
}

func TestParseSettings(t *testing.T) {
	valid := func() map[string]any {
		return map[string]any{"base_url": "https://acme.ifs.cloud/", "client_id": "mlc", "company_codes": []any{"10", "20"}}
	}
	s, err := ifscloud.ParseSettings(valid())
	if err != nil {
		t.Fatal(err)
	}
	if s.BaseURL != "https://acme.ifs.cloud" || s.Realm != "ifs" ||
		s.TokenURL != "https://acme.ifs.cloud/auth/realms/ifs/protocol/openid-connect/token" ||
		s.PageSize != 5000 || s.RequestsPerMinute != 1000 || s.TokenMaxAge != time.Hour ||
		s.Invoices.EntitySet != "CustomerOrderInvHeadSet" || !s.Invoices.KeyNumeric ||
		s.Invoices.Filter != ifscloud.DefaultReadyFilter("CustomerOrderInvoiceHandling") ||
		s.Customers.Fields[ifscloud.FieldKey] != "CustomerId" || s.Customers.KeyNumeric {
		t.Errorf("defaults: %+v", s)
	}

	if s.ReceiptOn != ifscloud.ReceiptOnConfirmed || len(s.PayoutFees) != 0 {
		t.Errorf("payout defaults: receipt_on %q, fee accounts %v", s.ReceiptOn, s.PayoutFees)
	}
	fees := valid()
	fees["receipt_on"] = "payout"
	fees["payout_fee_accounts"] = map[string]any{"10": "6570", "20": "6570-GC"}
	fees["payout_fee_tax_accounts"] = map[string]any{"10": "2640"}
	if s, err := ifscloud.ParseSettings(fees); err != nil || s.ReceiptOn != ifscloud.ReceiptOnPayout ||
		s.PayoutFees["10"] != (ifscloud.FeeAccounts{Account: "6570", TaxAccount: "2640"}) || s.PayoutFees["20"].Account != "6570-GC" {
		t.Errorf("payout settings: %+v, %v", s.PayoutFees, err)
	}

	over := valid()
	over["realm"] = "acme"
	over["page_size"] = float64(2000)
	over["token_max_age"] = "30m"
	over["invoice_fields"] = map[string]any{"open_amount": "OpenDomAmount", "business_unit": "ContractId"}
	over["invoice_projection"] = "InstantInvoiceHandling"
	s, err = ifscloud.ParseSettings(over)
	if err != nil {
		t.Fatal(err)
	}
	if s.TokenURL != "https://acme.ifs.cloud/auth/realms/acme/protocol/openid-connect/token" || s.PageSize != 2000 ||
		s.TokenMaxAge != 30*time.Minute || s.Invoices.Fields[ifscloud.FieldOpenAmount] != "OpenDomAmount" ||
		s.Invoices.Fields[ifscloud.FieldBusinessUnit] != "ContractId" || s.Invoices.Fields[ifscloud.FieldKey] != "InvoiceId" ||
		!strings.Contains(s.Invoices.Filter, "IfsApp.InstantInvoiceHandling.CustomerOrderInvState'PostedAuth'") {
		t.Errorf("overrides: %+v", s)
	}

	bad := []struct {
		key   string
		value any
		want  string
	}{
		{"base_url", "ftp://acme", "base_url: must be an http(s) URL"},
		{"base_url", nil, "base_url: must be an http(s) URL"},
		{"client_id", "", "client_id: is required"},
		{"company_codes", []any{}, "company_codes: must be a non-empty list"},
		{"company_codes", []any{"1.0"}, "cannot be part of a NATS subject"},
		{"company_codes", "10", "company_codes: must be a list of strings"},
		{"page_size", float64(5001), "page_size: must be between 1 and 5000"},
		{"page_size", 2.5, "page_size: must be an integer"},
		{"requests_per_minute", float64(0), "requests_per_minute: must be positive"},
		{"token_max_age", "90", "token_max_age: must be a duration"},
		{"token_max_age", "10s", "token_max_age: must be at least 1m"},
		{"invoice_key_numeric", "yes", "invoice_key_numeric: must be true or false"},
		{"invoice_entity_set", "Bad Set", "is not an OData identifier"},
		{"invoice_fields", map[string]any{"colour": "Colour"}, `unknown field "colour"`},
		{"invoice_fields", map[string]any{"modified": ""}, `field "modified" is required`},
		{"customer_fields", map[string]any{"name": "Na me"}, "is not an OData identifier"},
		{"invoice_extra_fields", []any{"Ok", "not ok"}, "is not an OData identifier"},
		{"write_attempts", float64(0), "write_attempts: must be at least 1"},
		{"receipt_on", "paid_out", `receipt_on: must be "confirmed" or "payout"`},
		{"payout_fee_accounts", map[string]any{"30": "6570"}, `company "30" is not one of company_codes`},
		{"payout_fee_accounts", map[string]any{"10": "65 70"}, `company "10": "65 70" is not an IFS account`},
		{"payout_fee_accounts", map[string]any{"10": "ABCDEFGHIJKLMNOPQRSTU"}, "is not an IFS account (1-20"},
		{"payout_fee_accounts", []any{"6570"}, "payout_fee_accounts: must be an object"},
		{"payout_fee_tax_accounts", map[string]any{"10": "2640"}, "has a tax account but no payout_fee_accounts entry"},
	}
	for i, tc := range bad {
		t.Run(fmt.Sprintf("%d_%s", i, tc.key), func(t *testing.T) {
			raw := valid()
			raw[tc.key] = tc.value
			_, err := ifscloud.ParseSettings(raw)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s=%v: error %v, want %q", tc.key, tc.value, err, tc.want)
			}
		})
	}
}

// TestTokenLifetime: the token is fetched once, reused, and replaced a
// margin before it expires, or before token_max_age when expires_in is
// longer, without IFS ever seeing an expired token.
func TestTokenLifetime(t *testing.T) {
	tests := []struct {
		name   string
		ttl    time.Duration
		reuse  time.Duration // still the first token at this age
		renew  time.Duration // a second token at this age
		maxAge string
	}{
		{"short expires_in is honoured", 180 * time.Second, 161 * time.Second, 163 * time.Second, "60m"},
		{"60-minute cycle caps a long expires_in", 2 * time.Hour, 58 * time.Minute, 59*time.Minute + time.Second, "60m"},
		{"shorter configured cycle", time.Hour, 9*time.Minute - time.Second, 9 * time.Minute, "10m"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			e := startSim(t, ifssim.Config{TokenTTL: tc.ttl, Now: clk.Now})
			if err := e.sim.PutInvoices(inv("10", 1, ifssim.StatePostedAuth, base)); err != nil {
				t.Fatal(err)
			}
			c := e.client(t, map[string]any{"token_max_age": tc.maxAge}, ifscloud.Options{Now: clk.Now})
			start := clk.Now()
			for _, step := range []struct {
				at     time.Duration
				tokens int
			}{{0, 1}, {tc.reuse, 1}, {tc.renew, 2}} {
				clk.Advance(start.Add(step.at).Sub(clk.Now()))
				if err := poll(c); err != nil {
					t.Fatalf("at %s: %v", step.at, err)
				}
				if st := e.sim.Stats(); st.TokensIssued != step.tokens || st.Unauthorized != 0 {
					t.Fatalf("at %s: %+v, want %d tokens and no 401", step.at, st, step.tokens)
				}
			}
		})
	}
}

// TestTokenRefreshedAfter401: a token IFS refuses before the client
// expected (revoked, or the clocks disagree) is replaced once and the
// request repeated; a fresh token refused too is an error, not a loop.
func TestTokenRefreshedAfter401(t *testing.T) {
	t.Run("revoked", func(t *testing.T) {
		e := startSim(t, ifssim.Config{})
		c := e.client(t, nil, ifscloud.Options{})
		if err := poll(c); err != nil {
			t.Fatal(err)
		}
		e.sim.RevokeTokens()
		if err := poll(c); err != nil {
			t.Fatalf("after revocation: %v", err)
		}
		if st := e.sim.Stats(); st.Unauthorized != 1 || st.TokensIssued != 2 || st.Queries != 2 {
			t.Errorf("%+v", st)
		}
	})
	t.Run("server clock ahead", func(t *testing.T) {
		simClock := newClock()
		e := startSim(t, ifssim.Config{TokenTTL: 10 * time.Minute, Now: simClock.Now})
		c := e.client(t, nil, ifscloud.Options{Now: newClock().Now})
		if err := poll(c); err != nil {
			t.Fatal(err)
		}
		simClock.Advance(11 * time.Minute)
		if err := poll(c); err != nil {
			t.Fatalf("after expiry: %v", err)
		}
		if st := e.sim.Stats(); st.Unauthorized != 1 || st.TokensIssued != 2 {
			t.Errorf("%+v", st)
		}
	})
	t.Run("fresh token refused too", func(t *testing.T) {
		e := startSim(t, ifssim.Config{}, func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/main/") {
					r.Header.Del("Authorization")
				}
				next.ServeHTTP(w, r)
			})
		})
		err := poll(e.client(t, nil, ifscloud.Options{}))
		if !errors.Is(err, ifscloud.ErrUnauthorized) || !errors.Is(err, ifscloud.ErrUnavailable) {
			t.Fatalf("error %v", err)
		}
		if st := e.sim.Stats(); st.Unauthorized != 2 || st.TokensIssued != 2 || st.APIRequests != 2 {
			t.Errorf("%+v, want exactly two tries", st)
		}
	})
}

func TestTokenRefused(t *testing.T) {
	tests := []struct {
		name     string
		secret   string
		settings map[string]any
		code     string
		refused  int
	}{
		{"wrong secret", "hunter2-wrong", nil, "unauthorized_client", 1},
		{"unknown realm", "secret", map[string]any{"realm": "other"}, "not_found", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startSim(t, ifssim.Config{})
			err := poll(e.clientWithSecret(t, tc.secret, tc.settings, ifscloud.Options{}))
			var ifsErr *ifscloud.Error
			if !errors.Is(err, ifscloud.ErrUnauthorized) || !errors.Is(err, ifscloud.ErrUnavailable) ||
				errors.Is(err, ifscloud.ErrNotFound) || !errors.As(err, &ifsErr) || ifsErr.Code != tc.code {
				t.Fatalf("error %v", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error reveals the secret: %v", err)
			}
			if st := e.sim.Stats(); st.TokensRefused != tc.refused || st.APIRequests != 0 {
				t.Errorf("%+v, want %d refused token requests, no retry and no API request", st, tc.refused)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		inject   func(*ifssim.Sim)
		settings map[string]any
		wantErr  error
		wantCode string
		requests int
		minWait  time.Duration
	}{
		{name: "5xx then success", inject: func(s *ifssim.Sim) { s.FailNext(2, 503) }, requests: 3},
		{name: "429 honours Retry-After", inject: func(s *ifssim.Sim) { s.ThrottleNext(1, time.Second) }, requests: 2, minWait: time.Second},
		{name: "5xx until attempts are spent", inject: func(s *ifssim.Sim) { s.FailNext(10, 500) },
			wantErr: ifscloud.ErrUnavailable, wantCode: "DATABASE_ERROR", requests: 4},
		{name: "400 is not retried", settings: map[string]any{"invoice_ready_filter": "contains(InvoiceNo,'1')"},
			wantErr: ifscloud.ErrInvalid, wantCode: "ODP_UNSUPPORTED_URL", requests: 1},
		{name: "404 is not retried", settings: map[string]any{"invoice_entity_set": "NopeSet"},
			wantErr: ifscloud.ErrNotFound, wantCode: "MI_METADATA_NOTFOUND", requests: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startSim(t, ifssim.Config{})
			if err := e.sim.PutInvoices(inv("10", 1, ifssim.StatePostedAuth, base)); err != nil {
				t.Fatal(err)
			}
			c := e.client(t, tc.settings, ifscloud.Options{})
			if tc.inject != nil {
				tc.inject(e.sim)
			}
			began := time.Now()
			err := poll(c)
			if tc.wantErr == nil && err != nil {
				t.Fatal(err)
			}
			var ifsErr *ifscloud.Error
			if tc.wantErr != nil && (!errors.Is(err, tc.wantErr) || !errors.As(err, &ifsErr) || ifsErr.Code != tc.wantCode) {
				t.Fatalf("error %v, want %v with code %s", err, tc.wantErr, tc.wantCode)
			}
			if st := e.sim.Stats(); st.APIRequests != tc.requests {
				t.Errorf("%d requests, want %d", st.APIRequests, tc.requests)
			}
			if waited := time.Since(began); waited < tc.minWait {
				t.Errorf("returned after %s, before Retry-After %s", waited, tc.minWait)
			}
		})
	}
}

func TestBreakerOpensOnRepeatedFailures(t *testing.T) {
	e := startSim(t, ifssim.Config{})
	e.sim.FailNext(100, 500)
	c := e.client(t, nil, ifscloud.Options{
		Backoff: retry.Backoff{Attempts: 1},
		Breaker: breaker.Options{Failures: 2, OpenFor: time.Hour},
	})
	for range 2 {
		if err := poll(c); !errors.Is(err, ifscloud.ErrUnavailable) {
			t.Fatalf("error %v", err)
		}
	}
	if !c.BreakerOpen() {
		t.Fatal("breaker still closed after two failures")
	}
	err := poll(c)
	if !errors.Is(err, ifscloud.ErrUnavailable) || !breaker.IsOpen(err) {
		t.Errorf("error %v, want an open breaker", err)
	}
	if st := e.sim.Stats(); st.APIRequests != 2 {
		t.Errorf("%d requests reached IFS, want 2", st.APIRequests)
	}
}

func TestLimiterBoundsRequests(t *testing.T) {
	e := startSim(t, ifssim.Config{})
	if err := e.sim.PutInvoices(inv("10", 1, ifssim.StatePostedAuth, base)); err != nil {
		t.Fatal(err)
	}
	c := e.client(t, nil, ifscloud.Options{Limiter: rate.NewLimiter(rate.Every(time.Hour), 2)})
	for range 2 {
		if err := poll(c); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.Invoices(ctx, "10", ifscloud.Watermark{}, func(ifscloud.InvoicePage) error { return nil })
	if err == nil {
		t.Fatal("third request passed a limiter with a burst of two")
	}
	if st := e.sim.Stats(); st.APIRequests != 2 {
		t.Errorf("%d requests reached IFS, want 2", st.APIRequests)
	}
}
