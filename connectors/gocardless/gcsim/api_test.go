package gcsim_test

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
)

func TestIdempotencyKeys(t *testing.T) {
	srv := start(t, func(o *gcsim.Options) { o.Tokens = append(o.Tokens, "second_token") })
	a := newAPI(t, srv)
	f := gbCustomer(t, a, "i@example.com", "Idem")

	first := a.do("POST", "/payments", payment(1000, f.mandate, nil), idem("inv-1")).must(t, 201, "payments")
	r := a.do("POST", "/payments", payment(2000, f.mandate, nil), idem("inv-1"))
	wantErr{status: 409, typ: "invalid_state", reason: "idempotent_creation_conflict"}.check(t, r)
	if got := r.err(t).Errors[0].Links["conflicting_resource_id"]; got != str(first, "id") {
		t.Fatalf("conflicting_resource_id %q, want %s", got, str(first, "id"))
	}
	if n := len(srv.Payments()); n != 1 {
		t.Fatalf("%d payments after a repeated key, want 1", n)
	}

	// A create refused by validation does not use the key up.
	bad := a.do("POST", "/payments", payment(1, f.mandate, nil), idem("inv-2"))
	invalid("amount", "/payments/amount").check(t, bad)
	a.do("POST", "/payments", payment(1000, f.mandate, nil), idem("inv-2")).must(t, 201, "payments")

	// Keys are scoped per resource type and per token.
	a.do("POST", "/customers", map[string]any{"customers": map[string]any{"company_name": "X"}}, idem("inv-1")).must(t, 201, "customers")
	other := &api{t: t, base: srv.URL, token: "second_token"}
	a2 := other.do("POST", "/payments", payment(1000, f.mandate, nil), idem("inv-1")).must(t, 201, "payments")
	if str(a2, "id") == str(first, "id") {
		t.Fatal("another token's key returned the first token's payment")
	}

	// Concurrent creates with one key: exactly one wins.
	var wg sync.WaitGroup
	statuses := make(chan int, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- a.do("POST", "/payments", payment(3000, f.mandate, nil), idem("race")).status
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[201] != 1 || count[409] != 19 {
		t.Fatalf("concurrent creates with one key: %v, want one 201 and nineteen 409", count)
	}
}

func TestPaging(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	var ids []string // creation order
	for i := range 7 {
		c := a.do("POST", "/customers", map[string]any{"customers": map[string]any{"company_name": fmt.Sprint("C", i)}}).must(t, 201, "customers")
		ids = append(ids, str(c, "id"))
		srv.Advance(time.Minute)
	}
	type page struct {
		ids           []string
		before, after any
		limit         float64
	}
	get := func(query string) page {
		t.Helper()
		r := a.do("GET", "/customers"+query, nil)
		if r.status != 200 {
			t.Fatalf("GET /customers%s: %d %s", query, r.status, r.raw)
		}
		var p page
		for _, c := range r.body["customers"].([]any) {
			p.ids = append(p.ids, str(c.(map[string]any), "id"))
		}
		meta := r.body["meta"].(map[string]any)
		cur := meta["cursors"].(map[string]any)
		p.before, p.after, p.limit = cur["before"], cur["after"], meta["limit"].(float64)
		return p
	}
	newestFirst := []string{ids[6], ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]}

	p := get("")
	if fmt.Sprint(p.ids) != fmt.Sprint(newestFirst) || p.limit != 50 || p.before != nil || p.after != nil {
		t.Fatalf("default page %+v, want all newest first, limit 50, no cursors", p)
	}
	var walked []string
	q := "?limit=3"
	for {
		p := get(q)
		if p.limit != 3 {
			t.Fatalf("meta.limit %v", p.limit)
		}
		walked = append(walked, p.ids...)
		if p.after == nil {
			break
		}
		if p.after != p.ids[len(p.ids)-1] {
			t.Fatalf("cursors.after %v is not the page's last id %s", p.after, p.ids[len(p.ids)-1])
		}
		q = "?limit=3&after=" + p.after.(string)
	}
	if fmt.Sprint(walked) != fmt.Sprint(newestFirst) {
		t.Fatalf("walking after cursors gave %v, want %v", walked, newestFirst)
	}
	// before: the items just newer than the cursor.
	p = get("?limit=2&before=" + ids[2])
	if fmt.Sprint(p.ids) != fmt.Sprint([]string{ids[4], ids[3]}) || p.before != ids[4] || p.after != ids[3] {
		t.Fatalf("before page %+v, want [%s %s] with both cursors", p, ids[4], ids[3])
	}
	p = get("?limit=5&before=" + ids[2])
	if fmt.Sprint(p.ids) != fmt.Sprint([]string{ids[6], ids[5], ids[4], ids[3]}) || p.before != nil {
		t.Fatalf("before page reaching the newest %+v, want no before cursor", p)
	}
	// created_at filters.
	created := str(a.do("GET", "/customers/"+ids[3], nil).must(t, 200, "customers"), "created_at")
	if p := get("?created_at[gte]=" + created); len(p.ids) != 4 {
		t.Fatalf("created_at[gte] gave %v", p.ids)
	}
	if p := get("?created_at[lt]=" + created); len(p.ids) != 3 || p.ids[0] != ids[2] {
		t.Fatalf("created_at[lt] gave %v", p.ids)
	}
	if p := get("?limit=500"); p.limit != 500 {
		t.Fatalf("limit 500 refused")
	}
	for _, q := range []string{"?limit=501", "?limit=0", "?limit=ten", "?after=CU000000000000",
		"?after=" + ids[1] + "&before=" + ids[3], "?created_at[gt]=yesterday"} {
		t.Run(q, func(t *testing.T) {
			wantErr{status: 400, typ: "invalid_api_usage", reason: "invalid_filters"}.check(t, a.do("GET", "/customers"+q, nil))
		})
	}
}

func TestRateLimit(t *testing.T) {
	srv := start(t, func(o *gcsim.Options) {
		o.RateLimit, o.RateWindow = 3, time.Minute
		o.Tokens = append(o.Tokens, "other_token")
	})
	a := newAPI(t, srv)
	before := time.Now()
	for i := range 3 {
		r := a.do("GET", "/customers", nil)
		if r.status != 200 {
			t.Fatalf("request %d: %d", i+1, r.status)
		}
		if got := r.header.Get("RateLimit-Limit"); got != "3" {
			t.Fatalf("RateLimit-Limit %q", got)
		}
		if got := r.header.Get("RateLimit-Remaining"); got != strconv.Itoa(2-i) {
			t.Fatalf("request %d: RateLimit-Remaining %q, want %d", i+1, got, 2-i)
		}
		reset, err := http.ParseTime(r.header.Get("RateLimit-Reset"))
		if err != nil {
			t.Fatalf("RateLimit-Reset %q is not an HTTP date: %v", r.header.Get("RateLimit-Reset"), err)
		}
		if reset.Before(before.Add(59*time.Second)) || reset.After(time.Now().Add(61*time.Second)) {
			t.Fatalf("RateLimit-Reset %v is not about a minute away", reset)
		}
	}
	r := a.do("GET", "/customers", nil)
	wantErr{status: 429, typ: "invalid_api_usage", reason: "rate_limit_exceeded"}.check(t, r)
	if e := r.err(t); e.Message != "Rate limit exceeded" {
		t.Fatalf("429 message %q", e.Message)
	}
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > 61 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if r.header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("RateLimit-Remaining on 429: %q", r.header.Get("RateLimit-Remaining"))
	}
	// Errors count and carry the headers too; other tokens have their own budget.
	other := &api{t: t, base: srv.URL, token: "other_token"}
	if r := other.do("GET", "/nowhere", nil); r.status != 404 || r.header.Get("RateLimit-Remaining") != "2" {
		t.Fatalf("other token: %d remaining %q", r.status, r.header.Get("RateLimit-Remaining"))
	}
}

func TestRateLimitWindowResets(t *testing.T) {
	srv := start(t, func(o *gcsim.Options) { o.RateLimit, o.RateWindow = 1, 300*time.Millisecond })
	a := newAPI(t, srv)
	a.do("GET", "/customers", nil)
	if r := a.do("GET", "/customers", nil); r.status != 429 {
		t.Fatalf("second request: %d, want 429", r.status)
	}
	time.Sleep(350 * time.Millisecond)
	if r := a.do("GET", "/customers", nil); r.status != 200 {
		t.Fatalf("after the window: %d, want 200", r.status)
	}
}

func TestAPIFaults(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := gbCustomer(t, a, "f@example.com", "Fault")

	t.Run("429 burst", func(t *testing.T) {
		if err := srv.SetFaults(gcsim.Faults{RateLimitNext: 2, RateLimitRetryAfter: 3 * time.Second}); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			r := a.do("GET", "/customers", nil)
			wantErr{status: 429, typ: "invalid_api_usage", reason: "rate_limit_exceeded"}.check(t, r)
			if r.header.Get("Retry-After") != "3" || r.header.Get("RateLimit-Remaining") != "0" {
				t.Fatalf("burst 429 headers: %v", r.header)
			}
		}
		if r := a.do("GET", "/customers", nil); r.status != 200 {
			t.Fatalf("after the burst: %d", r.status)
		}
	})
	t.Run("500 before processing", func(t *testing.T) {
		if err := srv.SetFaults(gcsim.Faults{ServerErrorNext: 1}); err != nil {
			t.Fatal(err)
		}
		r := a.do("POST", "/payments", payment(1000, f.mandate, nil), idem("k-500"))
		wantErr{status: 500, typ: "gocardless"}.check(t, r)
		if n := len(srv.Payments()); n != 0 {
			t.Fatalf("a request answered 500 before processing created %d payments", n)
		}
		a.do("POST", "/payments", payment(1000, f.mandate, nil), idem("k-500")).must(t, 201, "payments")
	})
	t.Run("500 after the request took effect", func(t *testing.T) {
		if err := srv.SetFaults(gcsim.Faults{ServerErrorNext: 1, ServerErrorAfterCommit: true}); err != nil {
			t.Fatal(err)
		}
		before := len(srv.Payments())
		wantErr{status: 500, typ: "gocardless"}.check(t, a.do("POST", "/payments", payment(1000, f.mandate, nil), idem("k-lost")))
		payments := srv.Payments()
		if len(payments) != before+1 {
			t.Fatalf("payments %d, want %d: the request should have taken effect", len(payments), before+1)
		}
		r := a.do("POST", "/payments", payment(1000, f.mandate, nil), idem("k-lost"))
		if got := r.err(t).Errors[0].Links["conflicting_resource_id"]; r.status != 409 || got != payments[len(payments)-1].ID {
			t.Fatalf("retry after a lost response: %d %s", r.status, r.raw)
		}
	})
	t.Run("500 rate", func(t *testing.T) {
		if err := srv.SetFaults(gcsim.Faults{ServerErrorRate: 1}); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			wantErr{status: 500, typ: "gocardless"}.check(t, a.do("GET", "/customers", nil))
		}
		if err := srv.SetFaults(gcsim.Faults{ServerErrorRate: 0.5}); err != nil {
			t.Fatal(err)
		}
		fails := 0
		for range 200 {
			if a.do("GET", "/customers", nil).status == 500 {
				fails++
			}
		}
		if fails < 60 || fails > 140 {
			t.Fatalf("rate 0.5 failed %d of 200 requests", fails)
		}
	})
	t.Run("latency", func(t *testing.T) {
		if err := srv.SetFaults(gcsim.Faults{Latency: 80 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		a.do("GET", "/customers", nil)
		if d := time.Since(began); d < 80*time.Millisecond {
			t.Fatalf("response after %v, want at least the injected 80ms", d)
		}
	})
	t.Run("invalid faults refused", func(t *testing.T) {
		for _, f := range []gcsim.Faults{{ServerErrorRate: 1.5}, {RateLimitNext: -1}, {Latency: -time.Second},
			{Webhook: gcsim.WebhookFaults{DropRate: -0.1}}} {
			if err := srv.SetFaults(f); err == nil {
				t.Fatalf("SetFaults(%+v) accepted", f)
			}
		}
	})
	if err := srv.SetFaults(gcsim.Faults{}); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		name string
		opts gcsim.Options
		ok   bool
	}{
		{"zero", gcsim.Options{}, true},
		{"builtin scenarios", gcsim.Options{Scenarios: gcsim.BuiltinScenarios()}, true},
		{"bad rule", gcsim.Options{Scenarios: []gcsim.Rule{{Resource: "payouts", Outcome: "failed"}}}, false},
		{"bad fault", gcsim.Options{Faults: gcsim.Faults{ServerErrorRate: -1}}, false},
		{"creditor prefix", gcsim.Options{Creditors: []gcsim.Creditor{{ID: "XX1"}}}, false},
		{"creditor twice", gcsim.Options{Creditors: []gcsim.Creditor{{ID: "CR1"}, {ID: "CR1"}}}, false},
		{"creditor country", gcsim.Options{Creditors: []gcsim.Creditor{{ID: "CR1", CountryCode: "UK"}}}, false},
		{"webhook URL", gcsim.Options{Webhook: gcsim.WebhookOptions{URL: "ftp://x"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.opts.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
