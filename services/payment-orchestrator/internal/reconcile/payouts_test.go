package reconcile_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/money"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/reconcile"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

// refusedPayout collects invoice A and settles it into a payout whose
// deposit the ERP refuses for good, and waits until the payout is refused.
func refusedPayout(t *testing.T) *rig.Rig {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"A": "100.00"})
	r.Poster.RefusePayouts(codes.FailedPrecondition)
	settle(r, 14)
	r.Eventually(20*time.Second, "payout refused", func() bool {
		return len(paidPayouts(r)) == 1 && r.Count(`SELECT count(*) FROM payouts WHERE state = 'refused'`) == 1
	})
	return r
}

// paidPayouts are the payouts GoCardless has paid.
func paidPayouts(r *rig.Rig) []gcsim.Payout {
	var out []gcsim.Payout
	for _, po := range r.Sim.Payouts() {
		if po.Status == "paid" {
			out = append(out, po)
		}
	}
	return out
}

// A payout's paid event (here from the /events catch-up) stores the
// payout and every item, ties each payment to its invoice, and posts one
// deposit that adds up to the bank line; the same events again (as
// webhooks, beyond JetStream's duplicate window) fetch and post nothing.
func TestPayoutPaidIsStoredAndPostedOnce(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"A": "100.00", "B": "250.55", "C": "12.34"})
	settle(r, 14)
	r.Eventually(20*time.Second, "every invoice paid out", func() bool {
		return r.Count(`SELECT count(*) FROM collections WHERE state = 'paid_out'`) == 3
	})
	paid := paidPayouts(r)
	if len(paid) == 0 {
		t.Fatal("GoCardless paid no payout in 14 days")
	}
	r.Eventually(20*time.Second, "payouts posted", func() bool {
		return r.Count(`SELECT count(*) FROM payouts WHERE state = 'posted'`) == len(paid)
	})
	ctx := context.Background()
	for _, po := range paid {
		var amount, itemsTotal, fees int64
		var items, unmatched int
		var reference string
		err := r.DB.QueryRow(ctx, `SELECT amount_minor, items_total_tenths, fees_total_tenths, items_count, unmatched_count, reference
			FROM payouts WHERE gc_payout_id = $1`, po.ID).Scan(&amount, &itemsTotal, &fees, &items, &unmatched, &reference)
		if err != nil {
			t.Fatalf("payout %s: %v", po.ID, err)
		}
		simItems := r.Sim.PayoutItems(po.ID)
		if amount != po.Amount || items != len(simItems) || reference != po.Reference || unmatched != 0 {
			t.Errorf("payout %s stored as amount %d, %d items, reference %q, %d unmatched; GoCardless: %d, %d items, %q",
				po.ID, amount, items, reference, unmatched, po.Amount, len(simItems), po.Reference)
		}
		if n := r.Count(`SELECT count(*) FROM payout_items i JOIN payouts p ON p.id = i.payout_id WHERE p.gc_payout_id = $1`, po.ID); n != len(simItems) {
			t.Errorf("payout %s: %d item rows, GoCardless lists %d", po.ID, n, len(simItems))
		}
		if sum := r.Count(`SELECT sum(i.amount_tenths) FROM payout_items i JOIN payouts p ON p.id = i.payout_id
				WHERE p.gc_payout_id = $1`, po.ID); int64(sum) != itemsTotal {
			t.Errorf("payout %s: the items add up to %d tenths, items_total_tenths says %d", po.ID, sum, itemsTotal)
		}
		if (itemsTotal+5)/10 != amount {
			t.Errorf("payout %s: items add up to %d tenths, amount %d", po.ID, itemsTotal, amount)
		}
		if fees >= 0 {
			t.Errorf("payout %s: fees %d tenths, want GoCardless's fees deducted", po.ID, fees)
		}
	}
	// Every paid invoice in exactly one payout, as a matched item.
	if n := r.Count(`SELECT count(*) FROM collections c WHERE c.state = 'paid_out' AND
			(SELECT count(*) FROM payout_items i WHERE i.collection_id = c.id AND i.type = 'payment_paid_out'
			   AND i.match = 'matched' AND i.invoice_id = c.invoice_id AND i.company = c.company) <> 1`); n != 0 {
		t.Errorf("%d paid invoices are not in exactly one payout", n)
	}
	deposits := r.Poster.Payouts()
	if len(deposits) != len(paid) {
		t.Fatalf("%d deposits posted for %d payouts", len(deposits), len(paid))
	}
	var invoices []string
	for _, d := range deposits {
		i := slices.IndexFunc(paid, func(po gcsim.Payout) bool { return po.ID == d.GetPayoutId() })
		if i < 0 {
			t.Fatalf("deposit for payout %s, which GoCardless did not pay", d.GetPayoutId())
		}
		po := paid[i]
		// GoCardless rounds the payout's amount and its deducted fees each on
		// its own: the fees posted are what the bank line leaves of the
		// lines, within a unit of deducted_fees.
		if d.GetAmountMinor() != po.Amount || d.GetPayoutAmountMinor() != po.Amount || abs(d.GetFeesMinor()+po.DeductedFees) > 1 ||
			d.GetReference() != po.Reference || d.GetArrivalDate() != po.ArrivalDate || d.GetCurrency() != po.Currency ||
			d.GetErp().GetConnection() != rig.ERPConnection || d.GetErp().GetCompany() != "10" {
			t.Errorf("deposit %v does not match payout %+v", d, po)
		}
		for _, l := range d.GetLines() {
			if l.GetAmountMinor() <= 0 || l.GetCustomerId() != "C1" || l.GetPaymentId() == "" {
				t.Errorf("deposit line %v", l)
			}
			invoices = append(invoices, l.GetInvoice().GetInvoiceId())
		}
		for _, f := range d.GetFees() {
			if f.GetAmountMinor() >= 0 || f.GetPaymentId() == "" {
				t.Errorf("fee line %v", f)
			}
		}
	}
	slices.Sort(invoices)
	if strings.Join(invoices, ",") != "A,B,C" {
		t.Errorf("deposits settle %v, want A, B and C once each", invoices)
	}
	if n := r.Count(`SELECT count(*) FROM payout_postings WHERE state = 'posted' AND erp_reference LIKE 'DEP-PO%'`); n != len(paid) {
		t.Errorf("%d deposits recorded posted, want %d", n, len(paid))
	}
	if n := r.Count(`SELECT count(*) FROM exceptions WHERE aggregate_type = 'payout'`); n != 0 {
		t.Errorf("%d payout exceptions on a clean book", n)
	}

	// Everything again, as webhooks: nothing fetched, stored or posted twice.
	calls, itemReads := r.Poster.Calls(), r.GCRequests.Calls("GET /payout_items")
	publishEvents(t, r, allEvents(t, r))
	r.Drain()
	if r.Poster.Calls() != calls {
		t.Errorf("erp-poster called %d more times on redelivery", r.Poster.Calls()-calls)
	}
	if got := r.GCRequests.Calls("GET /payout_items"); got != itemReads {
		t.Errorf("payout items read %d more times on redelivery", got-itemReads)
	}
	if n := r.Count(`SELECT count(*) FROM payouts`); n != len(paid) {
		t.Errorf("%d payouts stored after redelivery, want %d", n, len(paid))
	}
	if _, err := audit.VerifyAll(ctx, r.DB); err != nil {
		t.Error(err)
	}
}

// A payout whose amount is not the sum of its items is an exception and
// is not posted: the difference is never absorbed.
func TestPayoutMismatchIsAnException(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	// GoCardless (as the orchestrator sees it) says every payout is a penny
	// more than its items.
	reconcileThrough(r, editPayout(func(po map[string]any) { po["amount"] = po["amount"].(float64) + 1 }))
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"A": "100.00"})
	settle(r, 14)
	r.Eventually(20*time.Second, "mismatch", func() bool {
		return r.Count(`SELECT count(*) FROM payouts WHERE state = 'mismatch' AND difference_tenths = -10`) == 1
	})
	r.Eventually(10*time.Second, "exception", func() bool {
		return r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'payout_mismatch' AND aggregate_type = 'payout'`) == 1
	})
	r.Drain()
	if n := len(r.Poster.Payouts()); n != 0 {
		t.Errorf("%d deposits posted for a payout whose items do not add up", n)
	}
	if n := r.Count(`SELECT count(*) FROM payout_items`); n == 0 {
		t.Error("the mismatched payout's items were not kept")
	}
}

// A payment not collected by ml-connector (made on one of its mandates,
// e.g. in GoCardless's dashboard) is kept in the payout, flagged
// unmatched and raised, and left out of the deposit; ours are posted.
func TestPayoutUnknownPaymentIsFlagged(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"A": "100.00"})
	_, client, err := r.Dir.GoCardless(context.Background(), rig.GCConnection)
	if err != nil {
		t.Fatal(err)
	}
	var mandate string
	if err := r.DB.QueryRow(context.Background(), `SELECT gc_mandate_id FROM customer_links`).Scan(&mandate); err != nil {
		t.Fatal(err)
	}
	p := gocardless.PaymentParams{Amount: 4321, Currency: "GBP", Description: "made in the dashboard"}
	p.Links.Mandate = mandate
	foreign, _, err := client.CreatePayment(context.Background(), "dashboard-payment-1", p)
	if err != nil {
		t.Fatal(err)
	}
	settle(r, 14)
	r.Eventually(20*time.Second, "payouts handled", func() bool {
		return len(paidPayouts(r)) > 0 && r.Count(`SELECT count(*) FROM payouts WHERE state = 'posted'`) == len(paidPayouts(r))
	})
	var unmatched int
	var payoutID string
	if err := r.DB.QueryRow(context.Background(), `SELECT p.gc_payout_id, p.unmatched_count FROM payouts p
		JOIN payout_items i ON i.payout_id = p.id WHERE i.gc_payment_id = $1 AND i.type = 'payment_paid_out'`, foreign.ID).Scan(&payoutID, &unmatched); err != nil {
		t.Fatalf("the foreign payment's item was not kept: %v", err)
	}
	if n := r.Count(`SELECT count(*) FROM payout_items WHERE gc_payment_id = $1 AND (match <> 'unmatched' OR collection_id IS NOT NULL)`, foreign.ID); n != 0 {
		t.Errorf("%d items of the foreign payment matched to a collection", n)
	}
	if unmatched < 1 {
		t.Errorf("payout %s counts %d unmatched items", payoutID, unmatched)
	}
	if n := r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'payout_unmatched_items' AND aggregate_id = $1`, payoutID); n != 1 {
		t.Errorf("%d unmatched-items exceptions for payout %s", n, payoutID)
	}
	r.Drain()
	for _, d := range r.Poster.Payouts() {
		for _, l := range d.GetLines() {
			if l.GetPaymentId() == foreign.ID {
				t.Errorf("the foreign payment was posted: %v", l)
			}
		}
		for _, f := range d.GetFees() {
			if f.GetPaymentId() == foreign.ID {
				t.Errorf("the foreign payment's fee was posted: %v", f)
			}
		}
	}
	// What is posted plus what is kept unmatched is the bank line.
	if n := r.Count(`SELECT count(*) FROM payouts p WHERE p.gc_payout_id = $1 AND abs(p.amount_minor * 10
			- (SELECT sum(amount_tenths) FROM payout_postings WHERE payout_id = p.id)
			- (SELECT sum(amount_tenths) FROM payout_items WHERE payout_id = p.id AND match = 'unmatched')) < 10`, payoutID); n != 1 {
		t.Errorf("payout %s: deposits and unmatched items do not add up to the payout", payoutID)
	}
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// Refunds and charge-backs reach the ERP through the payout that nets
// them: negative lines on their invoices (the refund with its ERP refund
// document), and the fee GoCardless gives back on a charge-back a
// positive fee line.
func TestPayoutNetsRefundsAndChargeBacks(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct, Sim: gcsim.Options{Scenarios: scenarios}})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"OK": "100.00", "BACK": "100.02", "R": "200.00"})
	settle(r, 14)
	r.Eventually(20*time.Second, "paid out and charged back", func() bool {
		s := states(t, r)
		return s["OK"] == "paid_out" && s["R"] == "paid_out" && s["BACK"] == "charged_back"
	})
	r.Publish(&mlcv1.RefundRequested{SchemaVersion: 1, Erp: rig.ERP("10"), RefundId: "RF1", Invoice: &mlcv1.InvoiceKey{InvoiceId: "R"},
		CustomerId: "C1", Version: "v1", Amount: "30.00", Currency: "GBP"})
	r.Eventually(10*time.Second, "refund created", func() bool { return len(r.Sim.Refunds()) == 1 })
	settle(r, 6)
	// GoCardless nets debits into the next payout it makes, while that
	// stays positive: one more payment paid out, larger than them, makes it.
	r.Publish(rig.Invoice("LATER", "C1", "500.00"))
	r.Eventually(10*time.Second, "later payment", func() bool {
		return r.Count(`SELECT count(*) FROM collections WHERE invoice_id = 'LATER' AND gc_payment_id IS NOT NULL`) == 1
	})
	settle(r, 14)
	r.Eventually(20*time.Second, "every paid payout posted", func() bool {
		paid := paidPayouts(r)
		return len(paid) >= 2 && r.Count(`SELECT count(*) FROM payouts WHERE state = 'posted'`) == len(paid)
	})
	r.Drain()
	var refund, chargeBack, feeBack bool
	var backPayment string
	if err := r.DB.QueryRow(context.Background(), `SELECT gc_payment_id FROM collections WHERE invoice_id = 'BACK'`).Scan(&backPayment); err != nil {
		t.Fatal(err)
	}
	for _, d := range r.Poster.Payouts() {
		for _, l := range d.GetLines() {
			switch l.GetKind() {
			case mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_REFUND:
				refund = true
				if l.GetAmountMinor() != -3000 || l.GetInvoice().GetInvoiceId() != "R" || l.GetErpRefundId() != "RF1" || l.GetRefundId() == "" {
					t.Errorf("refund line %v", l)
				}
			case mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_CHARGED_BACK:
				chargeBack = true
				if l.GetAmountMinor() != -10002 || l.GetInvoice().GetInvoiceId() != "BACK" || l.GetPaymentId() != backPayment {
					t.Errorf("charge-back line %v", l)
				}
			}
		}
		for _, f := range d.GetFees() {
			if f.GetPaymentId() == backPayment && f.GetAmountMinor() > 0 {
				feeBack = true
			}
		}
	}
	if !refund || !chargeBack || !feeBack {
		t.Errorf("deposits carry refund %v, charge-back %v, fee given back %v; want all three", refund, chargeBack, feeBack)
	}
	if n := r.Count(`SELECT count(*) FROM payout_items WHERE type = 'payment_refunded' AND match = 'matched' AND refund_id IS NOT NULL AND invoice_id = 'R'`); n != 1 {
		t.Errorf("%d refund items tied to refund RF1 of invoice R", n)
	}
	if n := r.Count(`SELECT count(*) FROM exceptions WHERE aggregate_type = 'payout'`); n != 0 {
		t.Errorf("%d payout exceptions", n)
	}
}

// A deposit the ERP refuses for good is an exception, and its payout
// refused, not posted.
func TestPayoutRefusedByTheERP(t *testing.T) {
	r := refusedPayout(t)
	if n := r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'erp_posting_refused' AND aggregate_type = 'payout'`); n != 1 {
		t.Errorf("%d refusal exceptions on the payout", n)
	}
	if n := r.Count(`SELECT count(*) FROM payout_postings WHERE state = 'refused' AND posted_at IS NULL`); n != 1 {
		t.Errorf("%d deposits recorded refused", n)
	}
	if n := r.Count(`SELECT count(*) FROM pending_outcomes WHERE kind = 'payout'`); n != 0 {
		t.Errorf("%d refused deposits still queued", n)
	}
}

// A subscription's instalments are payments no collection records by id:
// the payout's items for them are tied to the subscription's invoice
// through the payment GoCardless names the subscription of.
func TestPayoutTiesInstalmentsToTheirInvoice(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	subscribed(r, 2)
	settle(r, 70)
	r.Eventually(20*time.Second, "both instalments in posted payouts", func() bool {
		paid := paidPayouts(r)
		return len(paid) == 2 && r.Count(`SELECT count(*) FROM payouts WHERE state = 'posted'`) == 2
	})
	if n := r.Count(`SELECT count(*) FROM payout_items WHERE type = 'payment_paid_out' AND match = 'matched' AND invoice_id = 'SUB1'`); n != 2 {
		t.Errorf("%d instalments tied to invoice SUB1, want 2", n)
	}
	if n := r.Count(`SELECT count(*) FROM payout_items WHERE match = 'unmatched'`); n != 0 {
		t.Errorf("%d items unmatched", n)
	}
	r.Drain()
	lines := 0
	for _, d := range r.Poster.Payouts() {
		for _, l := range d.GetLines() {
			if l.GetInvoice().GetInvoiceId() == "SUB1" && l.GetAmountMinor() == 2500 {
				lines++
			}
		}
	}
	if lines != 2 {
		t.Errorf("%d instalment lines posted, want 2", lines)
	}
}

// A payout with more items than PAYOUT_MAX_ITEMS is not stored but
// raised; one whose items GoCardless refuses to list (410 Gone after six
// months) becomes a dead letter, an exception, rather than endless
// retries. Neither is posted.
func TestPayoutsThatCannotBeStored(t *testing.T) {
	t.Run("too many items", func(t *testing.T) {
		r := rig.New(t, rig.Options{GC: rig.Direct})
		r.Reconciler.MaxPayoutItems = 1 // every payout has a payment and its fee
		r.Consumers("a", 2)
		collected(t, r, map[string]string{"A": "100.00"})
		settle(r, 14)
		r.Eventually(20*time.Second, "exception", func() bool {
			return len(paidPayouts(r)) == 1 && r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'payout_too_large' AND aggregate_id = $1`, paidPayouts(r)[0].ID) == 1
		})
		if n := r.Count(`SELECT count(*) FROM payouts`); n != 0 {
			t.Errorf("%d payouts stored", n)
		}
		if n := r.Count(`SELECT count(*) FROM leases WHERE aggregate_type = 'payout'`); n != 0 {
			t.Errorf("%d payout leases left", n)
		}
	})
	t.Run("items gone", func(t *testing.T) {
		r := rig.New(t, rig.Options{GC: rig.Direct})
		reconcileThrough(r, payoutItemsGone{})
		r.Consumers("a", 2)
		collected(t, r, map[string]string{"A": "100.00"})
		settle(r, 14)
		r.Eventually(20*time.Second, "dead letter", func() bool {
			return r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'dead_letter' AND strpos(reason, '410') > 0`) == 1
		})
		if n := r.Count(`SELECT count(*) FROM payouts`); n != 0 {
			t.Errorf("%d payouts stored", n)
		}
		if n := len(r.Poster.Payouts()); n != 0 {
			t.Errorf("%d deposits posted", n)
		}
	})
}

// payoutItemsGone answers GET /payout_items as GoCardless does for a
// payout older than six months (410, reason gone; docs/gocardless.md).
type payoutItemsGone struct{}

func (payoutItemsGone) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.URL.Path != "/payout_items" {
		return http.DefaultTransport.RoundTrip(req)
	}
	body := `{"error":{"type":"invalid_api_usage","code":410,"message":"Payout items are only available for payouts created in the last 6 months",` +
		`"errors":[{"reason":"gone","message":"Payout items are only available for payouts created in the last 6 months"}],"request_id":"rig"}}`
	return &http.Response{StatusCode: http.StatusGone, Status: "410 Gone", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: req}, nil
}

// A payout that settled invoices of two companies (one creditor serving
// both) is posted as one deposit to each, each with its own invoices and
// fees; in whole minor units the deposits add up to the bank line.
func TestPayoutSplitOverCompanies(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	c20 := rig.Customer("C2")
	c20.Erp = rig.ERP("20")
	r.Publish(rig.Customer("C1"))
	r.Publish(c20)
	r.Eventually(20*time.Second, "mandates", func() bool {
		return r.Count(`SELECT count(*) FROM customer_links WHERE gc_mandate_id IS NOT NULL`) == 2
	})
	i20 := rig.Invoice("B", "C2", "333.33")
	i20.Erp = rig.ERP("20")
	r.Publish(rig.Invoice("A", "C1", "123.45"))
	r.Publish(i20)
	r.Eventually(20*time.Second, "payments", func() bool {
		return r.Count(`SELECT count(*) FROM collections WHERE gc_payment_id IS NOT NULL`) == 2
	})
	settle(r, 14)
	r.Eventually(20*time.Second, "payout posted", func() bool {
		return len(paidPayouts(r)) == 1 && r.Count(`SELECT count(*) FROM payouts WHERE state = 'posted'`) == 1
	})
	r.Drain()
	deposits := r.Poster.Payouts()
	if len(deposits) != 2 {
		t.Fatalf("%d deposits, want one per company", len(deposits))
	}
	var total int64
	for _, d := range deposits {
		total += d.GetAmountMinor()
		want := map[string]string{"10": "A", "20": "B"}[d.GetErp().GetCompany()]
		if len(d.GetLines()) != 1 || d.GetLines()[0].GetInvoice().GetInvoiceId() != want || len(d.GetFees()) != 1 {
			t.Errorf("deposit to company %s: %v", d.GetErp().GetCompany(), d)
		}
		if d.GetPayoutAmountMinor() != paidPayouts(r)[0].Amount {
			t.Errorf("deposit names payout amount %d, GoCardless paid %d", d.GetPayoutAmountMinor(), paidPayouts(r)[0].Amount)
		}
	}
	if po := paidPayouts(r)[0]; total != po.Amount {
		t.Errorf("deposits add up to %d, the payout is %d", total, po.Amount)
	}
	if n := r.Count(`SELECT count(*) FROM payout_postings WHERE state = 'posted'`); n != 2 {
		t.Errorf("%d deposits recorded posted", n)
	}
}

// The same paid event delivered several times at once (a webhook and the
// catch-up past JetStream's window, to replicas side by side) stores the
// payout once and posts its deposit once.
func TestPayoutPaidDeliveredConcurrently(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 8)
	collected(t, r, map[string]string{"A": "100.00", "B": "20.00"})
	evs, paid := paidEvents(t, r) // everything happens; nothing delivered yet
	publishEvents(t, r, append(evs, append(append([]gocardless.Event(nil), paid...), append(paid, paid...)...)...))
	r.Eventually(30*time.Second, "payouts posted", func() bool {
		return r.Count(`SELECT count(*) FROM payouts WHERE state = 'posted'`) == len(paidPayouts(r))
	})
	r.Drain()
	for _, po := range paidPayouts(r) {
		if n := r.Count(`SELECT count(*) FROM payout_items i JOIN payouts p ON p.id = i.payout_id WHERE p.gc_payout_id = $1`, po.ID); n != len(r.Sim.PayoutItems(po.ID)) {
			t.Errorf("payout %s: %d items stored, GoCardless lists %d", po.ID, n, len(r.Sim.PayoutItems(po.ID)))
		}
	}
	if n, want := len(r.Poster.Payouts()), len(paidPayouts(r)); n != want {
		t.Errorf("%d deposits posted for %d payouts", n, want)
	}
	if n := r.Count(`SELECT count(*) FROM payout_postings`); n != len(paidPayouts(r)) {
		t.Errorf("%d deposits queued for %d payouts", n, len(paidPayouts(r)))
	}
	if n := r.Count(`SELECT count(*) FROM leases WHERE aggregate_type = 'payout'`); n != 0 {
		t.Errorf("%d payout leases left behind", n)
	}
}

// A line GoCardless gave finer than a minor unit (it documents whole
// units for payments; only fees are kept finer) cannot be booked: the
// payout is stored, left fetched and raised, and nothing is posted. Nor
// can an operator re-post it: a payout's items never change, so the
// refusal says to book it by hand.
func TestPayoutFractionalLineIsNotPosted(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	reconcileThrough(r, halfPennyLine{})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"A": "100.00"})
	settle(r, 14)
	r.Eventually(20*time.Second, "exception", func() bool {
		return r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'payout_fractional_amount'`) == 1
	})
	if n := r.Count(`SELECT count(*) FROM payouts WHERE state = 'fetched'`); n != 1 {
		t.Errorf("%d payouts left fetched, want the one", n)
	}
	r.Drain()
	if n := len(r.Poster.Payouts()); n != 0 {
		t.Errorf("%d deposits posted", n)
	}
	po := paidPayouts(r)
	if len(po) != 1 {
		t.Fatalf("%d paid payouts, want 1", len(po))
	}
	_, err := operator.NewDesk(r.DB, r.Registry, nil).RepostPayout(context.Background(), po[0].ID, "ann", "")
	if !errors.Is(err, operator.ErrNotRepostable) || !strings.Contains(err.Error(), "book it in the ERP by hand") {
		t.Errorf("re-post of a fetched payout: %v, want refused with what to do instead", err)
	}
	if n := len(r.Poster.Payouts()); n != 0 {
		t.Errorf("%d deposits posted after the refused re-post", n)
	}
}

// halfPennyLine moves half a minor unit from the first fee item of each
// page of payout items to the first payment_paid_out item: the sum stays.
type halfPennyLine struct{}

func (halfPennyLine) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path != "/payout_items" {
		return http.DefaultTransport.RoundTrip(req)
	}
	var page map[string]any
	return roundTripJSON(req, &page, func() {
		items, _ := page["payout_items"].([]any)
		shift := func(typ string, by int64) {
			for _, it := range items {
				if it := it.(map[string]any); it["type"] == typ {
					if t, err := gocardless.ParseTenths(it["amount"].(string)); err == nil {
						it["amount"] = money.FormatTenths(t + by)
					}
					return
				}
			}
		}
		shift("payment_paid_out", 5)
		shift("gocardless_fee", -5)
	})
}

// A payout with a deposit of more lines or fees than erp-poster takes in
// one request is stored and raised payout_too_large before anything is
// queued: not queued to be refused later, nor left saying posting.
func TestPayoutDepositTooLargeIsNotQueued(t *testing.T) {
	reconcile.SetMaxDeposit(t, 1, 1) // as if 20,000
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"A": "100.00", "B": "20.00"})
	settle(r, 14)
	r.Eventually(20*time.Second, "payout raised too large", func() bool {
		return len(paidPayouts(r)) == 1 && r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'payout_too_large' AND aggregate_id = $1`, paidPayouts(r)[0].ID) == 1
	})
	r.Drain()
	if n := r.Count(`SELECT count(*) FROM payouts WHERE state = 'fetched' AND items_count = 4`); n != 1 {
		t.Errorf("%d payouts stored with their 4 items and left unposted, want 1", n)
	}
	if n := r.Count(`SELECT count(*) FROM pending_outcomes`) + r.Count(`SELECT count(*) FROM payout_postings`) + len(r.Poster.Payouts()); n != 0 {
		t.Errorf("%d deposits queued or posted for a payout erp-poster would refuse", n)
	}
}
