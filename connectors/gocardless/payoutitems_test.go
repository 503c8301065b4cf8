package gocardless_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
)

func TestParseTenths(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"45.0", 450}, {"45", 450}, {"-264.0", -2640}, {"0.5", 5}, {"-0.5", -5}, {"12.30", 123},
		{"0", 0}, {"-0.0", 0}, {"922337203685477580.7", 9223372036854775807},
	} {
		got, err := gocardless.ParseTenths(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseTenths(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "-", ".5", "5.", "4,5", "1e3", "+5", "0.05", "1.25", "--1", " 1", "922337203685477580.8",
		"9999999999999999999", "1.0000000000000000000000000000000"} {
		if got, err := gocardless.ParseTenths(bad); err == nil {
			t.Errorf("ParseTenths(%q) = %d, want an error", bad, got)
		}
	}
}

func TestRoundTenths(t *testing.T) {
	for _, c := range []struct{ in, lo, hi int64 }{
		{0, 0, 0}, {14, 1, 1}, {16, 2, 2}, {15, 1, 2}, {-15, -2, -1}, {-14, -1, -1}, {-16, -2, -2}, {-5, -1, 0}, {5, 0, 1}, {20, 2, 2},
	} {
		if lo, hi := gocardless.RoundTenths(c.in); lo != c.lo || hi != c.hi {
			t.Errorf("RoundTenths(%d) = %d, %d; want %d, %d", c.in, lo, hi, c.lo, c.hi)
		}
	}
}

func TestCheckPayoutItems(t *testing.T) {
	items := []gocardless.PayoutItem{
		{Type: "payment_paid_out", Amount: "20000.0"},
		{Type: "gocardless_fee", Amount: "-264.0"},
		{Type: "payment_paid_out", Amount: "1234"},
		{Type: "gocardless_fee", Amount: "-33.5"}, // sum 20936.5: a tie
	}
	for _, amount := range []int64{20936, 20937} {
		sum, err := gocardless.CheckPayoutItems(amount, items)
		if err != nil || sum != 209365 {
			t.Errorf("CheckPayoutItems(%d) = %d, %v; want 209365 tenths, no error", amount, sum, err)
		}
	}
	for _, amount := range []int64{20935, 20938, 21234} {
		if _, err := gocardless.CheckPayoutItems(amount, items); !errors.Is(err, gocardless.ErrPayoutMismatch) {
			t.Errorf("CheckPayoutItems(%d) = %v, want ErrPayoutMismatch", amount, err)
		}
	}
	if _, err := gocardless.CheckPayoutItems(0, []gocardless.PayoutItem{{Type: "x", Amount: "1.05"}}); err == nil ||
		errors.Is(err, gocardless.ErrPayoutMismatch) {
		t.Errorf("unreadable amount: %v", err)
	}
}

// TestPayoutShapes decodes bodies shaped as GoCardless documents them
// (gocardless-pro-python tests/fixtures/payouts.json and
// payout_items.json; nulls as gocardless-pro-java Payout.java and
// PayoutItem.java describe them).
func TestPayoutShapes(t *testing.T) {
	var po gocardless.Payout
	if err := json.Unmarshal([]byte(`{"amount":1000,"arrival_date":null,"created_at":"2014-01-01T12:00:00.000Z",
		"currency":"EUR","deducted_fees":20,"fx":{"estimated_exchange_rate":"1.1234567890","exchange_rate":null,
		"fx_amount":null,"fx_currency":"GBP"},"id":"PO123","links":{"creditor":"CR123","creditor_bank_account":"BA123"},
		"metadata":{"salesforce_id":"ABCD1234"},"payout_type":"merchant","reference":"ref-1","status":"pending","tax_currency":null}`),
		&po); err != nil {
		t.Fatal(err)
	}
	if po.Amount != 1000 || po.DeductedFees != 20 || po.ArrivalDate != "" || po.TaxCurrency != "" || po.FX == nil ||
		po.FX.FXCurrency != "GBP" || po.FX.FXAmount != nil || po.FX.EstimatedExchangeRate != "1.1234567890" ||
		po.FX.ExchangeRate != "" || po.Links.CreditorBankAccount != "BA123" || po.Metadata["salesforce_id"] != "ABCD1234" {
		t.Errorf("payout %+v, fx %+v", po, po.FX)
	}
	var paid gocardless.Payout
	if err := json.Unmarshal([]byte(`{"amount":1000,"arrival_date":"2014-01-02","fx":{"estimated_exchange_rate":null,
		"exchange_rate":"1.1234567890","fx_amount":1150,"fx_currency":"GBP"},"tax_currency":"GBP"}`), &paid); err != nil {
		t.Fatal(err)
	}
	if paid.FX == nil || paid.FX.FXAmount == nil || *paid.FX.FXAmount != 1150 || paid.ArrivalDate != "2014-01-02" ||
		paid.TaxCurrency != "GBP" {
		t.Errorf("paid payout %+v", paid)
	}
	var noFX gocardless.Payout
	if err := json.Unmarshal([]byte(`{"amount":5,"fx":null}`), &noFX); err != nil || noFX.FX != nil {
		t.Errorf("payout without fx: %+v, %v", noFX, err)
	}

	var items []gocardless.PayoutItem
	if err := json.Unmarshal([]byte(`[{"amount":"45.0","links":{"mandate":"MD123","payment":"PM123","refund":"RF123"},
		"taxes":[{"amount":"1.1","currency":"EUR","destination_amount":"1.1","destination_currency":"EUR",
		"exchange_rate":"1.11205","tax_rate_id":"GB_VAT_1"}],"type":"payment_paid_out"},
		{"amount":-26.5,"links":{"payment":"PM124"},"taxes":[{"amount":"4.4","currency":"USD","destination_amount":null,
		"destination_currency":"GBP","exchange_rate":null,"tax_rate_id":"GB_VAT_1"}],"type":"gocardless_fee"}]`), &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 {
		t.Fatalf("items %+v", items)
	}
	first, fee := items[0], items[1]
	if first.Type != gocardless.PayoutItemPaymentPaidOut || first.Amount != "45.0" || first.Links.Payment != "PM123" ||
		first.Links.Mandate != "MD123" || first.Links.Refund != "RF123" || len(first.Taxes) != 1 ||
		first.Taxes[0] != (gocardless.PayoutItemTax{Amount: "1.1", Currency: "EUR", DestinationAmount: "1.1",
			DestinationCurrency: "EUR", ExchangeRate: "1.11205", TaxRateID: "GB_VAT_1"}) {
		t.Errorf("first item %+v", first)
	}
	if fee.Amount != "-26.5" || fee.Links.Payment != "PM124" || fee.Taxes[0].DestinationAmount != "" || fee.Taxes[0].ExchangeRate != "" {
		t.Errorf("fee item (amount sent as a number, nulls) %+v", fee)
	}
	if n, err := fee.Tenths(); err != nil || n != -265 {
		t.Errorf("fee tenths %d, %v", n, err)
	}
	if n, err := first.Taxes[0].Tenths(); err != nil || n != 11 {
		t.Errorf("tax tenths %d, %v", n, err)
	}
	var bad gocardless.PayoutItem
	if err := json.Unmarshal([]byte(`{"amount":true}`), &bad); err == nil {
		t.Errorf("amount true decoded: %+v", bad)
	}
}

// TestPayoutItemsFromSim: the client pages through a payout's items from
// gcsim and they add up to the payout's amount.
func TestPayoutItemsFromSim(t *testing.T) {
	e := setup(t, gcsim.Options{})
	ctx := context.Background()
	_, _, md := e.customer(t, 1)
	var want int64
	for n := range 7 {
		amount := int64(1_000 + 1_111*n) // fractional fees: 1% of 2111 is 21.1
		if _, _, err := e.gc.CreatePayment(ctx, fmt.Sprintf("pay-%d", n), paymentParams(md, amount)); err != nil {
			t.Fatal(err)
		}
		want += amount
	}
	e.sim.Advance(10 * 24 * time.Hour)
	pos, err := e.gc.ListPayouts(ctx, gocardless.PayoutListParams{Status: "paid"})
	if err != nil || len(pos.Items) != 1 {
		t.Fatalf("paid payouts: %+v, %v", pos, err)
	}
	po := pos.Items[0]
	for _, p := range []gocardless.PayoutListParams{{Reference: po.Reference}, {CreditorBankAccount: po.Links.CreditorBankAccount},
		{PayoutType: "merchant", Currency: "GBP"}} {
		if got, err := e.gc.ListPayouts(ctx, p); err != nil || len(got.Items) != 1 || got.Items[0].ID != po.ID {
			t.Errorf("payouts by %+v: %+v, %v", p, got, err)
		}
	}
	if got, err := e.gc.ListPayouts(ctx, gocardless.PayoutListParams{Reference: "SIM-NOTHING"}); err != nil || len(got.Items) != 0 {
		t.Errorf("payouts by an unknown reference: %+v, %v", got, err)
	}
	if po.TaxCurrency != "GBP" || po.FX != nil || po.ArrivalDate == "" || po.Amount >= want || po.DeductedFees <= 0 {
		t.Errorf("payout %+v", po)
	}

	page, err := e.gc.ListPayoutItems(ctx, gocardless.PayoutItemListParams{Payout: po.ID, ListParams: gocardless.ListParams{Limit: 3}})
	if err != nil || len(page.Items) != 3 || page.After == "" || page.Limit != 3 {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	before := e.calls.requests()
	var items []gocardless.PayoutItem
	paidOut := int64(0)
	for it, err := range e.gc.PayoutItems(ctx, po.ID) {
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, it)
		if it.Type == gocardless.PayoutItemPaymentPaidOut {
			n, err := it.Tenths()
			if err != nil {
				t.Fatal(err)
			}
			paidOut += n
		}
	}
	if len(items) != 14 || paidOut != want*10 || e.calls.requests()-before != 1 {
		t.Fatalf("%d items (%d tenths paid out, want %d) in %d calls", len(items), paidOut, want*10, e.calls.requests()-before)
	}
	sum, err := gocardless.CheckPayoutItems(po.Amount, items)
	if err != nil {
		t.Fatal(err)
	}
	if lo, _ := gocardless.RoundTenths(sum); want-lo != po.DeductedFees {
		t.Errorf("fees %d, want %d (payments %d, items %d tenths)", po.DeductedFees, want-lo, want, sum)
	}
	if _, err := gocardless.CheckPayoutItems(po.Amount+1, items); !errors.Is(err, gocardless.ErrPayoutMismatch) {
		t.Errorf("amount off by one: %v", err)
	}
	// Small pages give the same items.
	var paged []gocardless.PayoutItem
	p := gocardless.PayoutItemListParams{Payout: po.ID, ListParams: gocardless.ListParams{Limit: 4}}
	for {
		page, err := e.gc.ListPayoutItems(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page.Items...)
		if page.After == "" {
			break
		}
		p.After = page.After
	}
	if fmt.Sprint(paged) != fmt.Sprint(items) {
		t.Errorf("pages of 4:\n%v\nwant\n%v", paged, items)
	}
	if _, err := e.gc.ListPayoutItems(ctx, gocardless.PayoutItemListParams{Payout: "PO000000000000"}); !gocardless.IsNotFound(err) {
		t.Errorf("unknown payout: %v", err)
	}
	// The iterator yields the error and stops.
	var errs int
	for _, err := range e.gc.PayoutItems(ctx, "PO000000000000") {
		if err == nil || !gocardless.IsNotFound(err) {
			t.Errorf("iterator: %v", err)
		}
		errs++
	}
	if errs != 1 {
		t.Errorf("%d yields for an unknown payout", errs)
	}
}
