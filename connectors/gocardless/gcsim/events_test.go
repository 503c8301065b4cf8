package gcsim_test

import (
	"net/url"
	"slices"
	"testing"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
)

func TestEventFilters(t *testing.T) {
	srv := start(t, func(o *gcsim.Options) {
		o.Scenarios = []gcsim.Rule{{Resource: "payments", AmountSuffix: "01", Outcome: "failed"}}
	})
	a := newAPI(t, srv)
	f := activeGB(t, srv, a, "e@example.com", "Events")
	ok := a.do("POST", "/payments", payment(1000, f.mandate, nil)).must(t, 201, "payments")
	bad := a.do("POST", "/payments", payment(1001, f.mandate, nil)).must(t, 201, "payments")
	srv.Advance(10 * day)
	rf := a.do("POST", "/refunds", map[string]any{"refunds": map[string]any{"amount": 100, "total_amount_confirmation": 100,
		"links": map[string]any{"payment": ok["id"]}}}).must(t, 201, "refunds")
	srv.Advance(5 * day)
	all := srv.Events()
	paidOut := lastEvent(t, srv, "payment", str(ok, "id"), "paid_out")

	// want computes the expected ids, newest first, from the in-process view.
	want := func(keep func(gcsim.Event) bool) []string {
		var ids []string
		for i := len(all) - 1; i >= 0; i-- {
			if keep(all[i]) {
				ids = append(ids, all[i].ID)
			}
		}
		return ids
	}
	ids := func(r reply) []string {
		var out []string
		for _, e := range r.body["events"].([]any) {
			out = append(out, str(e.(map[string]any), "id"))
		}
		return out
	}
	cases := []struct {
		name  string
		query url.Values
		keep  func(gcsim.Event) bool
	}{
		{"all", url.Values{}, func(gcsim.Event) bool { return true }},
		{"resource_type", url.Values{"resource_type": {"mandates"}}, func(e gcsim.Event) bool { return e.ResourceType == "mandates" }},
		{"action", url.Values{"action": {"failed"}}, func(e gcsim.Event) bool { return e.Action == "failed" }},
		{"action and resource_type", url.Values{"action": {"created"}, "resource_type": {"payments"}},
			func(e gcsim.Event) bool { return e.Action == "created" && e.ResourceType == "payments" }},
		{"payment", url.Values{"payment": {str(bad, "id")}}, func(e gcsim.Event) bool { return e.Links["payment"] == str(bad, "id") }},
		{"mandate", url.Values{"mandate": {f.mandate}}, func(e gcsim.Event) bool { return e.Links["mandate"] == f.mandate }},
		{"refund", url.Values{"refund": {str(rf, "id")}}, func(e gcsim.Event) bool { return e.Links["refund"] == str(rf, "id") }},
		{"payout", url.Values{"payout": {paidOut.Links["payout"]}}, func(e gcsim.Event) bool { return e.Links["payout"] == paidOut.Links["payout"] }},
		{"created_at[gt]", url.Values{"created_at[gt]": {paidOut.CreatedAt}}, func(e gcsim.Event) bool { return e.CreatedAt > paidOut.CreatedAt }},
		{"created_at[gte] and [lte]", url.Values{"created_at[gte]": {paidOut.CreatedAt}, "created_at[lte]": {paidOut.CreatedAt}},
			func(e gcsim.Event) bool { return e.CreatedAt == paidOut.CreatedAt }},
		{"created_at[lt]", url.Values{"created_at[lt]": {paidOut.CreatedAt}}, func(e gcsim.Event) bool { return e.CreatedAt < paidOut.CreatedAt }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expect := want(tc.keep)
			if len(expect) == 0 || (len(expect) == len(all) && tc.name != "all") {
				t.Fatalf("filter %v selects %d of %d events; the case proves nothing", tc.query, len(expect), len(all))
			}
			r := a.do("GET", "/events?"+tc.query.Encode(), nil)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			same(t, "event ids", ids(r), expect)
		})
	}
	t.Run("include", func(t *testing.T) {
		r := a.do("GET", "/events?resource_type=payments&action=failed&include=payment", nil)
		linked := r.body["linked"].(map[string]any)["payments"].([]any)
		if len(linked) != 1 || str(linked[0].(map[string]any), "id") != str(bad, "id") ||
			str(linked[0].(map[string]any), "status") != "failed" {
			t.Fatalf("linked payments %v", linked)
		}
	})
	t.Run("get by id", func(t *testing.T) {
		e := a.do("GET", "/events/"+paidOut.ID, nil).must(t, 200, "events")
		d := e["details"].(map[string]any)
		if str(e, "action") != "paid_out" || str(d, "cause") != "payment_paid_out" || str(d, "origin") != "gocardless" ||
			link(e, "payout") == "" || e["resource_metadata"] == nil || e["metadata"] == nil {
			t.Fatalf("event %v", e)
		}
	})
	for _, q := range []string{"payment=" + str(ok, "id") + "&mandate=" + f.mandate, "resource_type=widgets",
		"include=payment", "resource_type=mandates&include=payment", "limit=501"} {
		t.Run("refused: "+q, func(t *testing.T) {
			wantErr{status: 400, typ: "invalid_api_usage", reason: "invalid_filters"}.check(t, a.do("GET", "/events?"+q, nil))
		})
	}
}

// Catch-up the way a consumer does it: remember the newest event seen and
// ask for what came after it with before=, page by page.
func TestEventCatchUp(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := activeGB(t, srv, a, "c@example.com", "CatchUp")
	seen := map[string]bool{}
	var order []string
	newest := ""
	catchUp := func() {
		for {
			q := "/events?limit=4"
			if newest != "" {
				q += "&before=" + newest
			}
			r := a.do("GET", q, nil)
			page := r.body["events"].([]any)
			if len(page) == 0 {
				return
			}
			// Pages are newest first; apply oldest first.
			for i := len(page) - 1; i >= 0; i-- {
				id := str(page[i].(map[string]any), "id")
				if seen[id] {
					t.Fatalf("event %s returned twice", id)
				}
				seen[id] = true
				order = append(order, id)
			}
			newest = str(page[0].(map[string]any), "id")
		}
	}
	catchUp()
	for range 3 {
		a.do("POST", "/payments", payment(1000, f.mandate, nil)).must(t, 201, "payments")
		srv.Advance(2 * day)
		catchUp()
	}
	srv.Advance(10 * day)
	catchUp()
	var all []string
	for _, e := range srv.Events() {
		all = append(all, e.ID)
	}
	if !slices.Equal(order, all) {
		t.Fatalf("catch-up saw %d events in order %v,\nwant %d: %v", len(order), order, len(all), all)
	}
}

// EventsFrom(n) is Events without its first n: a watcher keeping count
// reads every event once, in order, and out-of-range counts are safe.
func TestEventsFrom(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := activeGB(t, srv, a, "from@example.com", "From")
	seen := srv.EventsFrom(0)
	a.do("POST", "/payments", payment(1000, f.mandate, nil)).must(t, 201, "payments")
	srv.Advance(10 * day)
	seen = append(seen, srv.EventsFrom(len(seen))...)
	all := srv.Events()
	if !slices.EqualFunc(seen, all, func(a, b gcsim.Event) bool { return a.ID == b.ID }) || len(all) == 0 {
		t.Errorf("read in two steps: %d events, want the %d of Events in the same order", len(seen), len(all))
	}
	if n := len(srv.EventsFrom(len(all) + 5)); n != 0 {
		t.Errorf("EventsFrom past the end: %d events, want none", n)
	}
	if n := len(srv.EventsFrom(-1)); n != len(all) {
		t.Errorf("EventsFrom(-1): %d events, want all %d", n, len(all))
	}
}
