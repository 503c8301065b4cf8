package gcsim_test

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
)

// item is a payout item as a test compares it: "type payment amount",
// plus its taxes as "amount currency destination_amount
// destination_currency exchange_rate tax_rate_id".
func item(m map[string]any) string {
	s := fmt.Sprintf("%s %s %s", m["type"], link(m, "payment"), m["amount"])
	for _, raw := range m["taxes"].([]any) {
		tx := raw.(map[string]any)
		s += fmt.Sprintf(" [%v %v %v %v %v %v]", tx["amount"], tx["currency"], tx["destination_amount"],
			tx["destination_currency"], tx["exchange_rate"], tx["tax_rate_id"])
	}
	return s
}

// payoutItems lists every item of a payout through GET /payout_items,
// limit per page, following the after cursor; it checks each page's
// cursors on the way.
func payoutItems(t *testing.T, a *api, payout string, limit int) []map[string]any {
	t.Helper()
	var all []map[string]any
	after := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("paging does not end")
		}
		q := url.Values{"payout": {payout}, "limit": {strconv.Itoa(limit)}}
		if after != "" {
			q.Set("after", after)
		}
		r := a.do("GET", "/payout_items?"+q.Encode(), nil)
		if r.status != 200 {
			t.Fatalf("payout items: %d %s", r.status, r.raw)
		}
		page, _ := r.body["payout_items"].([]any)
		for _, it := range page {
			all = append(all, it.(map[string]any))
		}
		cursors := r.body["meta"].(map[string]any)["cursors"].(map[string]any)
		if (pages == 0) != (cursors["before"] == nil) {
			t.Fatalf("page %d: before cursor %v", pages, cursors["before"])
		}
		next, _ := cursors["after"].(string)
		if next == "" {
			return all
		}
		if len(page) != limit {
			t.Fatalf("page %d has %d items and an after cursor", pages, len(page))
		}
		after = next
	}
}

// sumTenths adds up item amounts given to one decimal place.
func sumTenths(t *testing.T, items []map[string]any) int64 {
	t.Helper()
	var sum int64
	for _, it := range items {
		s := it["amount"].(string)
		whole, frac, ok := strings.Cut(s, ".")
		if !ok || len(frac) != 1 {
			t.Fatalf("amount %q is not a decimal with one place", s)
		}
		n, err := strconv.ParseInt(strings.TrimPrefix(whole, "-")+frac, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(s, "-") {
			n = -n
		}
		sum += n
	}
	return sum
}

// roundHalfAway rounds tenths to the minor unit, half away from zero.
func roundHalfAway(t int64) int64 {
	if t < 0 {
		return -((-t + 5) / 10)
	}
	return (t + 5) / 10
}

func sortedItems(items []map[string]any) []string {
	var out []string
	for _, it := range items {
		out = append(out, item(it))
	}
	slices.Sort(out)
	return out
}

// payoutOf advances the clock a day at a time until the payment is paid
// out, and returns its payout.
func payoutOf(t *testing.T, srv *gcsim.Server, a *api, payment string) map[string]any {
	t.Helper()
	for range 20 {
		if p := a.do("GET", "/payments/"+payment, nil).must(t, 200, "payments"); link(p, "payout") != "" {
			return a.do("GET", "/payouts/"+link(p, "payout"), nil).must(t, 200, "payouts")
		}
		srv.Advance(day)
	}
	t.Fatalf("payment %s never paid out", payment)
	return nil
}

// TestPayoutItems: each paid-out payment is a payment_paid_out credit
// and a gocardless_fee debit with its VAT in taxes; the payout's amount
// is their sum rounded to the minor unit, and the items page with
// cursors.
func TestPayoutItems(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := activeGB(t, srv, a, "payout@example.com", "Payout")
	p1 := str(a.do("POST", "/payments", payment(20000, f.mandate, nil)).must(t, 201, "payments"), "id")
	p2 := str(a.do("POST", "/payments", payment(1234, f.mandate, nil)).must(t, 201, "payments"), "id")
	po := payoutOf(t, srv, a, p1)
	id := str(po, "id")
	// Pending: no arrival date yet (gocardless-pro-java Payout.java).
	if str(po, "status") != "pending" || po["arrival_date"] != nil || str(po, "tax_currency") != "GBP" {
		t.Fatalf("new payout %v", po)
	}
	if k := keys(po); k != "amount arrival_date created_at currency deducted_fees fx id links metadata payout_type "+
		"reference status tax_currency" {
		t.Errorf("payout attributes %s", k)
	}
	if link(a.do("GET", "/payments/"+p2, nil).must(t, 200, "payments"), "payout") != id {
		t.Fatal("payments of one run are in different payouts")
	}
	srv.Advance(day)
	po = a.do("GET", "/payouts/"+id, nil).must(t, 200, "payouts")
	if str(po, "status") != "paid" || str(po, "arrival_date") == "" {
		t.Fatalf("paid payout %v", po)
	}
	if got := eventsOf(srv, "payout", id, false); !slices.Equal(got, []string{"paid"}) {
		t.Errorf("payout events %v", got)
	}

	items := payoutItems(t, a, id, 50)
	// 1% + 20p, 20% VAT: 20000 → 200 + 20 = 220.0, VAT 44.0; 1234 →
	// 12.3 + 20 = 32.3, VAT 6.5 (6.46 half up).
	want := []string{
		"gocardless_fee " + p1 + " -264.0 [44.0 GBP 44.0 GBP <nil> GB_VAT_1]",
		"gocardless_fee " + p2 + " -38.8 [6.5 GBP 6.5 GBP <nil> GB_VAT_1]",
		"payment_paid_out " + p1 + " 20000.0",
		"payment_paid_out " + p2 + " 1234.0",
	}
	if got := sortedItems(items); !slices.Equal(got, want) {
		t.Fatalf("items\n got %q\nwant %q", got, want)
	}
	for _, c := range []struct{ amount, fee, tax int64 }{{20000, 2200, 440}, {1234, 323, 65}} {
		if fee, tax := gcsim.DefaultFees.Charge(c.amount, "GB"); fee != c.fee || tax != c.tax {
			t.Errorf("Charge(%d) = %d, %d tenths; want %d, %d", c.amount, fee, tax, c.fee, c.tax)
		}
	}
	if fee, tax := gcsim.DefaultFees.Charge(1000, "DE"); fee != 300 || tax != 0 {
		t.Errorf("Charge for a German creditor = %d, %d", fee, tax)
	}
	sum := sumTenths(t, items)
	if sum != 209312 || po["amount"].(float64) != float64(roundHalfAway(sum)) || po["deducted_fees"].(float64) != 303 {
		t.Errorf("payout amount %v, deducted_fees %v; items sum to %d tenths", po["amount"], po["deducted_fees"], sum)
	}
	if k := keys(items[0]); k != "amount links taxes type" {
		t.Errorf("payout item attributes %s", k)
	}
	for _, it := range items {
		if it["type"] == "gocardless_fee" {
			if k := keys(it["taxes"].([]any)[0].(map[string]any)); k != "amount currency destination_amount destination_currency exchange_rate tax_rate_id" {
				t.Errorf("tax attributes %s", k)
			}
		}
	}
	if got := sortedItems(payoutItems(t, a, id, 1)); !slices.Equal(got, want) {
		t.Errorf("one item a page:\n got %q\nwant %q", got, want)
	}
	// before goes back a page.
	first := a.do("GET", "/payout_items?payout="+id+"&limit=2", nil)
	after := first.body["meta"].(map[string]any)["cursors"].(map[string]any)["after"].(string)
	second := a.do("GET", "/payout_items?payout="+id+"&limit=2&after="+url.QueryEscape(after), nil)
	before := second.body["meta"].(map[string]any)["cursors"].(map[string]any)["before"].(string)
	back := a.do("GET", "/payout_items?payout="+id+"&limit=2&before="+url.QueryEscape(before), nil)
	if fmt.Sprint(back.body["payout_items"]) != fmt.Sprint(first.body["payout_items"]) {
		t.Errorf("before %q gave %v, want the first page %v", before, back.body["payout_items"], first.body["payout_items"])
	}

	filters := wantErr{status: 400, typ: "invalid_api_usage", reason: "invalid_filters"}
	for _, q := range []string{"", "?limit=10", "?payout=" + id + "&limit=0", "?payout=" + id + "&limit=501",
		"?payout=" + id + "&include_2020_tax_cutover=yes", "?payout=" + id + "&after=nope"} {
		t.Run("refused "+q, func(t *testing.T) { filters.check(t, a.do("GET", "/payout_items"+q, nil)) })
	}
	a.do("GET", "/payout_items?payout="+id+"&include_2020_tax_cutover=true", nil).must(t, 200, "meta")
	wantErr{status: 404, typ: "invalid_api_usage", reason: "resource_not_found"}.check(t, a.do("GET", "/payout_items?payout=PO000000000000", nil))
	// Items are served for payouts of the last 6 months only.
	srv.Advance(190 * day)
	wantErr{status: 410, typ: "invalid_api_usage", reason: "gone"}.check(t, a.do("GET", "/payout_items?payout="+id, nil))
}

// TestPayoutDebits: a charge-back (with its fee given back and a
// surcharge) and a refund wait in the creditor's balance until a payout
// can take them and stay positive; the charge-back's chargeback_settled
// event then links that payout.
func TestPayoutDebits(t *testing.T) {
	srv := start(t, func(o *gcsim.Options) {
		o.Fees = &gcsim.Fees{BasisPoints: 100, Fixed: 20, Surcharge: 150}
		o.Scenarios = []gcsim.Rule{{Resource: "payments", Metadata: map[string]string{"case": "dispute"}, Outcome: "charged_back"}}
	})
	a := newAPI(t, srv)
	f := activeGB(t, srv, a, "debits@example.com", "Debits")
	disputed := str(a.do("POST", "/payments", payment(5000, f.mandate, map[string]any{
		"metadata": map[string]any{"case": "dispute"}})).must(t, 201, "payments"), "id")
	kept := str(a.do("POST", "/payments", payment(3000, f.mandate, nil)).must(t, 201, "payments"), "id")
	first := payoutOf(t, srv, a, disputed)
	a.do("POST", "/refunds", map[string]any{"refunds": map[string]any{"amount": 1000, "total_amount_confirmation": 1000,
		"links": map[string]any{"payment": kept}}}).must(t, 201, "refunds")
	srv.Advance(10 * day)
	if st := str(a.do("GET", "/payments/"+disputed, nil).must(t, 200, "payments"), "status"); st != "charged_back" {
		t.Fatalf("disputed payment is %s", st)
	}
	if got := eventsOf(srv, "payment", disputed, false); slices.Contains(got, "chargeback_settled") {
		t.Fatalf("charge-back settled with no payout to take it: %v", got)
	}

	// A small payment's payout cannot take the debits and stay positive.
	small := str(a.do("POST", "/payments", payment(1000, f.mandate, nil)).must(t, 201, "payments"), "id")
	smallPO := payoutOf(t, srv, a, small)
	if got := sortedItems(payoutItems(t, a, str(smallPO, "id"), 50)); len(got) != 2 {
		t.Fatalf("small payout took the waiting debits: %q", got)
	}
	big := str(a.do("POST", "/payments", payment(20000, f.mandate, nil)).must(t, 201, "payments"), "id")
	bigPO := payoutOf(t, srv, a, big)
	id := str(bigPO, "id")
	items := payoutItems(t, a, id, 50)
	refund := ""
	for _, it := range items {
		if it["type"] == "payment_refunded" {
			refund = link(it, "refund")
			if link(it, "mandate") != f.mandate || link(it, "payment") != kept {
				t.Errorf("refund item links %v", it["links"])
			}
		}
	}
	// The charge-back gives back the fee of (50 + 20) × 1.2 and takes a
	// surcharge of 150 × 1.2; tax given back is negative.
	want := []string{
		"gocardless_fee " + big + " -264.0 [44.0 GBP 44.0 GBP <nil> GB_VAT_1]",
		"gocardless_fee " + disputed + " 84.0 [-14.0 GBP -14.0 GBP <nil> GB_VAT_1]",
		"payment_charged_back " + disputed + " -5000.0",
		"payment_paid_out " + big + " 20000.0",
		"payment_refunded " + kept + " -1000.0",
		"surcharge_fee " + disputed + " -180.0 [30.0 GBP 30.0 GBP <nil> GB_VAT_1]",
	}
	slices.Sort(want)
	if got := sortedItems(items); !slices.Equal(got, want) || refund == "" {
		t.Fatalf("items\n got %q\nwant %q", got, want)
	}
	bigPO = a.do("GET", "/payouts/"+id, nil).must(t, 200, "payouts")
	if sum := sumTenths(t, items); bigPO["amount"].(float64) != float64(roundHalfAway(sum)) || sum != 136400 ||
		bigPO["deducted_fees"].(float64) != 264-84+180 {
		t.Errorf("payout %v; items sum to %d tenths", bigPO, sum)
	}
	for _, action := range []string{"chargeback_settled", "surcharge_fee_debited"} {
		if ev := lastEvent(t, srv, "payment", disputed, action); ev.Links["payout"] != id {
			t.Errorf("%s links %v, want payout %s", action, ev.Links, id)
		}
	}
	if first["amount"].(float64) <= 0 {
		t.Errorf("first payout %v", first)
	}
}

// TestSettledScenarioSimulatorsPayOut: payment_late_failure_settled
// debits the failure from a payout at once, linking it from the
// settlement event, even when that payout's amount is negative.
func TestSettledScenarioSimulatorsPayOut(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := activeGB(t, srv, a, "late@example.com", "Late")
	p := str(a.do("POST", "/payments", payment(2500, f.mandate, nil)).must(t, 201, "payments"), "id")
	payoutOf(t, srv, a, p)
	runSimulator(a, "payment_late_failure_settled", p).must(t, 200, "scenario_simulators")
	settled := lastEvent(t, srv, "payment", p, "late_failure_settled")
	id := settled.Links["payout"]
	if id == "" {
		t.Fatalf("late_failure_settled links %v", settled.Links)
	}
	want := []string{
		"gocardless_fee " + p + " 54.0 [-9.0 GBP -9.0 GBP <nil> GB_VAT_1]",
		"payment_failed " + p + " -2500.0",
	}
	items := payoutItems(t, a, id, 50)
	if got := sortedItems(items); !slices.Equal(got, want) {
		t.Fatalf("items\n got %q\nwant %q", got, want)
	}
	po := a.do("GET", "/payouts/"+id, nil).must(t, 200, "payouts")
	if po["amount"].(float64) != -2446 || po["deducted_fees"].(float64) != -54 || str(po, "status") != "pending" {
		t.Errorf("settling payout %v", po)
	}
}

// TestFeeOptions: the price list is an option (none, capped); creditors
// outside GB and FR pay no tax; tax on fees in another currency than the
// creditor's tax currency has no destination amount until GoCardless
// confirms the rate.
func TestFeeOptions(t *testing.T) {
	t.Run("no fees", func(t *testing.T) {
		srv := start(t, func(o *gcsim.Options) { o.Fees = &gcsim.Fees{} })
		a := newAPI(t, srv)
		f := activeGB(t, srv, a, "free@example.com", "Free")
		p := str(a.do("POST", "/payments", payment(1000, f.mandate, nil)).must(t, 201, "payments"), "id")
		po := payoutOf(t, srv, a, p)
		if got := sortedItems(payoutItems(t, a, str(po, "id"), 50)); !slices.Equal(got, []string{"payment_paid_out " + p + " 1000.0"}) ||
			po["amount"].(float64) != 1000 || po["deducted_fees"].(float64) != 0 {
			t.Errorf("payout %v, items %q", po, got)
		}
	})
	t.Run("capped", func(t *testing.T) {
		srv := start(t, func(o *gcsim.Options) { o.Fees = &gcsim.Fees{BasisPoints: 100, Fixed: 20, Cap: 100} })
		a := newAPI(t, srv)
		f := activeGB(t, srv, a, "cap@example.com", "Cap")
		p := str(a.do("POST", "/payments", payment(20000, f.mandate, nil)).must(t, 201, "payments"), "id")
		po := payoutOf(t, srv, a, p)
		if po["amount"].(float64) != 20000-120 || po["deducted_fees"].(float64) != 120 {
			t.Errorf("capped fee: payout %v", po)
		}
	})
	t.Run("untaxed creditor", func(t *testing.T) {
		srv := start(t, func(o *gcsim.Options) {
			o.Creditors = []gcsim.Creditor{{ID: "CR00GERMANY001", Name: "GmbH", CountryCode: "DE", CustomPaymentPagesEnabled: true}}
		})
		a := newAPI(t, srv)
		f := mandateIn(t, a, "DE")
		srv.Advance(5 * day)
		p := str(a.do("POST", "/payments", map[string]any{"payments": map[string]any{"amount": 1000, "currency": "EUR",
			"links": map[string]any{"mandate": f.mandate}}}).must(t, 201, "payments"), "id")
		po := payoutOf(t, srv, a, p)
		got := sortedItems(payoutItems(t, a, str(po, "id"), 50))
		if !slices.Equal(got, []string{"gocardless_fee " + p + " -30.0", "payment_paid_out " + p + " 1000.0"}) ||
			po["tax_currency"] != nil || po["amount"].(float64) != 970 {
			t.Errorf("payout %v, items %q", po, got)
		}
	})
	t.Run("tax in another currency", func(t *testing.T) {
		srv := start(t)
		a := newAPI(t, srv)
		f := mandateIn(t, a, "FR")
		srv.Advance(5 * day)
		p := str(a.do("POST", "/payments", map[string]any{"payments": map[string]any{"amount": 1000, "currency": "EUR",
			"links": map[string]any{"mandate": f.mandate}}}).must(t, 201, "payments"), "id")
		po := payoutOf(t, srv, a, p)
		got := sortedItems(payoutItems(t, a, str(po, "id"), 50))
		if !slices.Equal(got, []string{"gocardless_fee " + p + " -36.0 [6.0 EUR <nil> GBP <nil> GB_VAT_1]",
			"payment_paid_out " + p + " 1000.0"}) || str(po, "tax_currency") != "GBP" || str(po, "currency") != "EUR" {
			t.Errorf("payout %v, items %q", po, got)
		}
	})
	t.Run("out of range", func(t *testing.T) {
		for _, f := range []gcsim.Fees{{BasisPoints: -1}, {BasisPoints: 10001}, {Fixed: -1}, {Fixed: 100001}, {Cap: -1},
			{Cap: 10000001}, {Surcharge: -1}, {Surcharge: 100001}} {
			if err := (gcsim.Options{Fees: &f}).Validate(); err == nil || !strings.Contains(err.Error(), "fees") {
				t.Errorf("%+v: %v", f, err)
			}
		}
		if err := (gcsim.Options{Fees: &gcsim.Fees{BasisPoints: 10000, Fixed: 100000, Cap: 10000000, Surcharge: 100000}}).Validate(); err != nil {
			t.Errorf("largest fees refused: %v", err)
		}
	})
}
