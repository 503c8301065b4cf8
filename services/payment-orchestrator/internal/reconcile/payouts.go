package reconcile

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/money"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// Payouts. A GoCardless payout is one bank deposit standing for many
// payments, net of fees, refunds and charge-backs. On its paid event
// (from a webhook or the /events catch-up: both arrive here as the same
// message) the payout and every one of its items are fetched with no
// transaction open, under a lease that records the intent, then stored in
// one transaction that also ties each item to the collection or refund it
// is for, checks the sum, raises what does not fit as exceptions, and
// queues one deposit per ERP connection and company for erp-poster.
//
// Money: payout amounts are integer minor units; payout items are given
// to a tenth of a minor unit and are handled as exact integer tenths.
// GoCardless rounds the sum of the items to the minor unit to get the
// payout's amount; an amount that is not that sum is a payout_mismatch
// exception, and the payout is not posted. An ERP books whole minor
// units: lines (payments, refunds, charge-backs) come whole, and one that
// does not is raised (payout_fractional_amount), not posted; fees, which
// GoCardless keeps finer, are posted as whole lines that add up to the
// deposit's rounded total (see deposit.settleFees), the exact tenths kept
// beside them. Nothing is ever a float.

// DefaultMaxPayoutItems bounds the items read for one payout unless
// Reconciler.MaxPayoutItems says otherwise; it is also the most
// PAYOUT_MAX_ITEMS allows. A payout is stored and its deposits queued
// only if each deposit has at most mlcv1.MaxPayoutLines lines and
// MaxPayoutFees fees, what erp-poster takes; reading more items than one
// deposit can carry would only find it too large later.
const DefaultMaxPayoutItems = mlcv1.MaxPayoutLines + mlcv1.MaxPayoutFees

// payoutLease is how long a payout's fetch may hold its lease before
// another delivery may take the fetch over (which only fetches again).
const payoutLease = 5 * time.Minute

// payoutLineKinds are the item types that settle (or reverse) an invoice:
// the lines of a deposit (gocardless-pro-java PayoutItem.java).
var payoutLineKinds = map[string]mlcv1.PayoutLineKind{
	gocardless.PayoutItemPaymentPaidOut:      mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_PAID_OUT,
	gocardless.PayoutItemPaymentFailed:       mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_FAILED,
	gocardless.PayoutItemPaymentChargedBack:  mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_CHARGED_BACK,
	gocardless.PayoutItemPaymentRefunded:     mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_REFUND,
	gocardless.PayoutItemRefund:              mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_REFUND,
	gocardless.PayoutItemRefundFundsReturned: mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_REFUND_FUNDS_RETURNED,
}

// payoutFeeKinds are the item types that are fees, booked to the fee
// account of the company whose payment they were charged on.
var payoutFeeKinds = map[string]mlcv1.PayoutFeeKind{
	gocardless.PayoutItemGoCardlessFee: mlcv1.PayoutFeeKind_PAYOUT_FEE_KIND_GOCARDLESS_FEE,
	gocardless.PayoutItemAppFee:        mlcv1.PayoutFeeKind_PAYOUT_FEE_KIND_APP_FEE,
	gocardless.PayoutItemSurchargeFee:  mlcv1.PayoutFeeKind_PAYOUT_FEE_KIND_SURCHARGE_FEE,
	gocardless.PayoutItemRevenueShare:  mlcv1.PayoutFeeKind_PAYOUT_FEE_KIND_REVENUE_SHARE,
}

// ignoredPayoutActions change nothing that is stored or posted
// (developer.gocardless.com/api-reference/#event-types-payout-events).
var ignoredPayoutActions = map[string]string{
	"fx_rate_confirmed":            "the payout's exchange rate is read with the payout on its paid event",
	"tax_exchange_rates_confirmed": "the taxes on the payout's fees are stored as GoCardless gave them with its items when it was paid",
}

// fetchedPayout is what GoCardless said about a payout, read before the
// transaction that stores it.
type fetchedPayout struct {
	conn   connections.Connection
	payout *gocardless.Payout
	items  []gocardless.PayoutItem
	tenths []int64 // items[i]'s amount
	sum    int64   // of tenths
	// instalments name the subscription of each payment no collection
	// records that GoCardless says is a subscription's (see PaymentsToPlace).
	instalments map[string]string
	reg         *accounts.Snapshot
	at          time.Time // when GoCardless paid it (the event's time)
	// What placeItems found the items tied to: collections by id, and the
	// ERP refund id of each refund row.
	collections map[int64]ledger.Collection
	erpRefunds  map[int64]string
	// refused says why the payout cannot be stored as GoCardless gave it
	// (an exception kind and its reason); "" when it can.
	refusedKind, refusedReason string
}

// payoutEvent applies an event of a payout.
func (r *Reconciler) payoutEvent(ctx context.Context, ev event) error {
	poID := ev.GetLinks()["payout"]
	if ev.GetAction() != "paid" || poID == "" {
		reason, known := ignoredPayoutActions[ev.GetAction()]
		switch {
		case poID == "":
			reason = "payout event without links.payout"
		case !known:
			reason = "payout action " + ev.GetAction() + " is not one the orchestrator knows"
		}
		return r.ledger.Tx(ctx, func(tx pgx.Tx) error {
			fresh, err := ledger.MarkProcessed(ctx, tx, "gocardless", ev.GetEventId())
			if err != nil || !fresh {
				return err
			}
			return r.ignore(ctx, tx, ev, poID, reason)
		})
	}
	if _, err := r.ledger.PayoutByGC(ctx, poID); !errors.Is(err, ledger.ErrNotFound) {
		if err != nil {
			return err
		}
		// Stored already: this event redelivered, or read again by the
		// catch-up. Nothing to fetch; post what is still queued.
		err := r.ledger.Tx(ctx, func(tx pgx.Tx) error {
			fresh, err := ledger.MarkProcessed(ctx, tx, "gocardless", ev.GetEventId())
			if err != nil || !fresh {
				return err
			}
			return r.ignore(ctx, tx, ev, poID, "payout already stored")
		})
		if err != nil {
			return err
		}
		return r.flushPayout(ctx, poID)
	}

	// The intent, committed before GoCardless is asked: this event fetches
	// the payout. Another delivery of the same event resumes it; another
	// event's waits until it is stored.
	holder := "gocardless-event:" + ev.GetEventId()
	_, _, err := r.ledger.Claim(ctx, ledger.PayoutAggregate, poID, holder,
		map[string]string{"fetch": "payout and payout items", "gc_payout": poID, "event": ev.GetEventId()}, payoutLease, "payout.fetching")
	if err != nil {
		return err // a *ledger.BusyError waits as Handle says
	}
	f, err := r.fetchPayout(ctx, ev, poID)
	if apiErr := (*gocardless.APIError)(nil); errors.As(err, &apiErr) && !gocardless.Temporary(err) {
		// GoCardless refuses the reads themselves (the payout is gone,
		// older than its items are kept, or not this account's): a dead
		// letter, which is an exception, not endless retries.
		return bus.Poison(err)
	}
	if err != nil {
		return err
	}
	store := func(tx pgx.Tx) error {
		fresh, err := ledger.MarkProcessed(ctx, tx, "gocardless", ev.GetEventId())
		if err != nil {
			return err
		}
		if fresh {
			if err := r.storePayout(ctx, tx, ev, poID, f); err != nil {
				return err
			}
		}
		err = ledger.Release(ctx, tx, ledger.PayoutAggregate, poID, holder)
		if !fresh && errors.Is(err, ledger.ErrLeaseLost) {
			return nil // applied before, and the lease with it
		}
		return err
	}
	// A payout storing a payment another one committed meanwhile fails on
	// the database's index; stored again, the other is found and this one's
	// item marked a duplicate. Each try waits for the other to commit, so a
	// second try is enough unless a third payout raced too.
	for try := 1; ; try++ {
		err = r.ledger.Tx(ctx, store)
		if !ledger.IsPaidOutTwice(err) || try == 3 {
			break
		}
	}
	if err != nil {
		return err
	}
	return r.flushPayout(ctx, poID)
}

// fetchPayout reads a payout, all its items, and the subscriptions of
// the instalments among them, with no transaction open.
func (r *Reconciler) fetchPayout(ctx context.Context, ev event, poID string) (*fetchedPayout, error) {
	conn, client, err := r.gcAccount(ctx, ev.GetConnection())
	if err != nil {
		return nil, err
	}
	f := &fetchedPayout{conn: conn, instalments: map[string]string{}, at: ev.at}
	if f.payout, err = client.GetPayout(ctx, poID); err != nil {
		return nil, fmt.Errorf("fetch payout %s: %w", poID, err)
	}
	limit := r.maxPayoutItems()
	for it, err := range client.PayoutItems(ctx, poID) {
		if err != nil {
			return nil, fmt.Errorf("fetch items of payout %s: %w", poID, err)
		}
		if len(f.items) == limit {
			f.refusedKind = "payout_too_large"
			f.refusedReason = fmt.Sprintf("payout %s has more than %d items (PAYOUT_MAX_ITEMS); not stored", poID, limit)
			return f, nil
		}
		f.items = append(f.items, it)
	}
	if err := checkPayout(f.payout); err != nil {
		f.refusedKind, f.refusedReason = "payout_unreadable", fmt.Sprintf("payout %s: %v; not stored", poID, err)
		return f, nil
	}
	f.tenths = make([]int64, len(f.items))
	for i, it := range f.items {
		if f.tenths[i], err = it.Tenths(); err == nil {
			err = errors.Join(checkTenths("amount", f.tenths[i]), checkTaxes(it))
		}
		if err != nil {
			f.refusedKind = "payout_unreadable"
			f.refusedReason = fmt.Sprintf("payout %s item %d (%s): %v; not stored", poID, i+1, it.Type, err)
			return f, nil
		}
	}
	if f.sum, err = gocardless.CheckPayoutItems(f.payout.Amount, f.items); err != nil && !errors.Is(err, gocardless.ErrPayoutMismatch) {
		f.refusedKind, f.refusedReason = "payout_unreadable", fmt.Sprintf("payout %s: %v; not stored", poID, err)
		return f, nil
	}
	// Payments no collection records, which may be a subscription's
	// instalments: only GoCardless names their subscription. Asked only
	// while some collection is a subscription, and not for payments on
	// mandates known not to be ours.
	mandateOf := map[string]string{}
	var payments []string
	for _, it := range f.items {
		id := it.Links.Payment
		if id == "" {
			continue
		}
		if _, seen := mandateOf[id]; !seen {
			payments = append(payments, id)
		}
		if it.Links.Mandate != "" || mandateOf[id] == "" {
			mandateOf[id] = it.Links.Mandate
		}
	}
	unknown, err := r.ledger.PaymentsToPlace(ctx, payments, mandateOf)
	if err != nil {
		return nil, err
	}
	for _, id := range unknown {
		p, err := client.GetPayment(ctx, id)
		if gocardless.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fetch payment %s of payout %s: %w", id, poID, err)
		}
		if p.Links.Subscription != "" {
			f.instalments[id] = p.Links.Subscription
		}
	}
	// The registry, read before the transaction (see Handle).
	if f.reg, err = r.dir.Snapshot(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// maxTenths bounds every amount of a payout and its items, in tenths of
// a minor unit (about 7 * 10^12 minor units): the sums of up to
// DefaultMaxPayoutItems (under 2^16) such amounts, and an amount times
// ten, stay far inside int64, so no arithmetic on them can overflow.
const maxTenths = int64(1) << 46

// maxReference is the longest payout reference erp-poster takes (and a
// bank statement line carries).
const maxReference = 140

// rate is an exchange rate as the database's numeric column (and an ERP)
// reads it: a positive decimal.
var rate = regexp.MustCompile(`^[0-9]{1,12}(\.[0-9]{1,18})?$`)

// checkTenths bounds one amount in tenths (see maxTenths).
func checkTenths(what string, t int64) error {
	if t > maxTenths || t < -maxTenths {
		return fmt.Errorf("%s of %s minor units is out of range", what, money.FormatTenths(t))
	}
	return nil
}

// checkPayout checks what GoCardless said about a payout before anything
// of it is stored or posted: what fails here would fail in the database
// or at erp-poster on every retry.
func checkPayout(po *gocardless.Payout) error {
	if po.Reference == "" || len(po.Reference) > maxReference || !utf8.ValidString(po.Reference) {
		return fmt.Errorf("reference of %d bytes is not 1 to %d characters", len(po.Reference), maxReference)
	}
	if _, err := time.Parse(time.DateOnly, po.ArrivalDate); err != nil {
		return fmt.Errorf("arrival_date %q is not YYYY-MM-DD", po.ArrivalDate)
	}
	if _, err := money.FromMinor(0, po.Currency); err != nil {
		return fmt.Errorf("currency: %w", err)
	}
	// Amounts are whole minor units; bounded as tenths, ten times them.
	for what, a := range map[string]int64{"amount": po.Amount, "deducted_fees": po.DeductedFees} {
		if a > maxTenths/10 || a < -maxTenths/10 {
			return fmt.Errorf("%s %d is out of range", what, a)
		}
	}
	if fx := po.FX; fx != nil {
		if fx.FXAmount != nil && (*fx.FXAmount > maxTenths/10 || *fx.FXAmount < -maxTenths/10) {
			return fmt.Errorf("fx.fx_amount %d is out of range", *fx.FXAmount)
		}
		for what, r := range map[string]string{"fx.exchange_rate": fx.ExchangeRate, "fx.estimated_exchange_rate": fx.EstimatedExchangeRate} {
			if r != "" && (!rate.MatchString(r) || strings.Trim(r, "0.") == "") {
				return fmt.Errorf("%s %.40q is not a positive decimal", what, r)
			}
		}
	}
	return nil
}

// checkTaxes reads an item's tax amounts, so that a malformed one is
// found before anything is stored.
func checkTaxes(it gocardless.PayoutItem) error {
	for _, t := range it.Taxes {
		a, err := t.Tenths()
		if err == nil {
			err = checkTenths("amount", a)
		}
		if err != nil {
			return fmt.Errorf("tax %s: %w", t.TaxRateID, err)
		}
		if t.DestinationAmount != "" {
			d, err := gocardless.ParseTenths(t.DestinationAmount)
			if err == nil {
				err = checkTenths("destination amount", d)
			}
			if err != nil {
				return fmt.Errorf("tax %s destination amount: %w", t.TaxRateID, err)
			}
		}
		if t.ExchangeRate != "" && (!rate.MatchString(t.ExchangeRate) || strings.Trim(t.ExchangeRate, "0.") == "") {
			return fmt.Errorf("tax %s exchange rate %.40q is not a positive decimal", t.TaxRateID, t.ExchangeRate)
		}
	}
	return nil
}

// storePayout stores a fetched payout and its items in tx, ties the items
// to collections and refunds, checks them, and queues the deposits.
func (r *Reconciler) storePayout(ctx context.Context, tx pgx.Tx, ev event, poID string, f *fetchedPayout) error {
	if f.refusedKind != "" {
		_, err := ledger.RaiseException(ctx, tx, ledger.Exception{Kind: f.refusedKind, AggregateType: ledger.PayoutAggregate,
			AggregateID: poID, Reason: f.refusedReason, Detail: map[string]any{"event": ev.GetEventId()},
			DedupKey: "payout:" + poID + ":" + f.refusedKind})
		return err
	}
	items, err := r.placeItems(ctx, tx, f)
	if err != nil {
		return err
	}
	twice, err := markDuplicates(ctx, tx, poID, items)
	if err != nil {
		return err
	}
	p := payoutRow(f, ev.GetEventId(), items)
	p, inserted, err := ledger.InsertPayout(ctx, tx, p, items)
	if err != nil {
		return err
	}
	if !inserted {
		return r.ignore(ctx, tx, ev, poID, "payout already stored")
	}
	raise := func(kind, reason string, detail map[string]any) error {
		_, err := ledger.RaiseException(ctx, tx, ledger.Exception{Kind: kind, AggregateType: ledger.PayoutAggregate, AggregateID: poID,
			Reason: reason, Detail: detail, DedupKey: "payout:" + poID + ":" + kind})
		return err
	}

	// Every paid invoice in exactly one payout: a payment GoCardless pays
	// out a second time is raised. Paid out by an earlier payout, it is
	// posted as GoCardless paid it (the ERPs key its receipt by payout and
	// payment, so it stays a receipt of its own). Paid out twice in this
	// payout, the payout is not posted: its deposit would carry the
	// payment twice, one receipt in JD Edwards (keyed so) and a request
	// erp-poster refuses.
	if len(twice) > 0 {
		ids := sortedKeys(twice)
		var within []string
		for _, id := range ids {
			if twice[id] == poID {
				within = append(within, id)
			}
		}
		reason := fmt.Sprintf("payout %s pays out %d payment(s) already paid out: %s", poID, len(ids), strings.Join(firstN(ids, 10), ", "))
		if len(within) > 0 {
			reason = fmt.Sprintf("payout %s pays out %d payment(s) more than once (%s); stored, not posted", poID, len(within),
				strings.Join(firstN(within, 10), ", "))
		}
		if err := raise("payout_duplicate_payment", reason, map[string]any{"payments": firstN(ids, 100), "paid_out_in": firstOf(twice, ids, 100)}); err != nil {
			return err
		}
		if len(within) > 0 {
			return nil // left fetched, as a payout with a fractional line
		}
	}

	if lo, hi := gocardless.RoundTenths(f.sum); p.AmountMinor != lo && p.AmountMinor != hi {
		reason := fmt.Sprintf("payout %s (%s) of %d %s: its %d items add up to %s, not to its amount", poID, p.Reference,
			p.AmountMinor, p.Currency, len(items), money.FormatTenths(f.sum))
		if err := raise("payout_mismatch", reason, map[string]any{"amount_minor": p.AmountMinor, "items_total_tenths": f.sum,
			"difference_tenths": f.sum - p.AmountMinor*10, "currency": p.Currency}); err != nil {
			return err
		}
		_, err := ledger.SetPayoutState(ctx, tx, p, ledger.PayoutMismatch, reason)
		return err
	}

	if p.UnmatchedCount > 0 {
		var total int64
		var ids []string
		for _, it := range items {
			if !it.Matched {
				total += it.AmountTenths
				if len(ids) < 100 {
					ids = append(ids, cmp.Or(it.PaymentID, it.RefundID, it.Type))
				}
			}
		}
		if err := raise("payout_unmatched_items", fmt.Sprintf("payout %s: %d item(s) for %s belong to no invoice or refund of ours; kept, not posted",
			poID, p.UnmatchedCount, money.FormatTenths(total)), map[string]any{"items": p.UnmatchedCount, "total_tenths": total, "first": ids}); err != nil {
			return err
		}
	}

	deposits, fractional, err := r.deposits(f, p, items)
	if err != nil {
		return err
	}
	if big := tooLarge(deposits); big != "" {
		// Left fetched: erp-poster would refuse the deposit, after it had
		// been queued and the payout said posting.
		return raise("payout_too_large", fmt.Sprintf("payout %s: %s; stored, not posted", poID, big),
			map[string]any{"max_lines": maxDepositLines, "max_fees": maxDepositFees})
	}
	if len(fractional) > 0 {
		// Left fetched: stored, not posted, and this says why.
		return raise("payout_fractional_amount", fmt.Sprintf("payout %s: %d line(s) of ours are not whole minor units (%s), which no ERP books; not posted",
			poID, len(fractional), strings.Join(firstN(fractional, 10), ", ")), map[string]any{"items": fractional})
	}
	if len(deposits) == 0 {
		_, err := ledger.SetPayoutState(ctx, tx, p, ledger.PayoutNothingToPost, "no item belongs to an invoice or refund of ours")
		return err
	}
	for _, d := range deposits {
		if d.row.Request, err = proto.Marshal(d.req); err != nil {
			return fmt.Errorf("deposit %s: %w", d.row.OutcomeID, err)
		}
		if err := ledger.QueuePayoutPosting(ctx, tx, p, d.row, d.audit()); err != nil {
			return err
		}
		if err := ledger.QueueOutcome(ctx, tx, ledger.PendingOutcome{AggregateType: ledger.PayoutAggregate, AggregateID: poID,
			EventID: ev.GetEventId(), OutcomeID: d.row.OutcomeID, Kind: "payout", Outcome: d.row.Request}); err != nil {
			return err
		}
	}
	_, err = ledger.SetPayoutState(ctx, tx, p, ledger.PayoutPosting, fmt.Sprintf("%d deposit(s) queued for erp-poster", len(deposits)))
	return err
}

// markDuplicates marks the payment_paid_out items whose payment a stored
// payout, or an earlier item of this one, pays out already, and returns
// those payments with the payout that paid them out first. The database
// holds every payment to one unmarked item: should another transaction
// store one for the same payment before this one commits, storing fails
// (ledger.IsPaidOutTwice) and is tried again, finding it.
func markDuplicates(ctx context.Context, tx pgx.Tx, poID string, items []ledger.PayoutItem) (map[string]string, error) {
	var paidOut []string
	for _, it := range items {
		if it.Type == gocardless.PayoutItemPaymentPaidOut && it.PaymentID != "" {
			paidOut = append(paidOut, it.PaymentID)
		}
	}
	twice, err := ledger.PaidOutBefore(ctx, tx, paidOut)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, it := range items {
		if it.Type != gocardless.PayoutItemPaymentPaidOut || it.PaymentID == "" {
			continue
		}
		if _, before := twice[it.PaymentID]; before || seen[it.PaymentID] {
			items[i].Duplicate = true
			if !before {
				twice[it.PaymentID] = poID // twice within this payout
			}
		}
		seen[it.PaymentID] = true
	}
	return twice, nil
}

// firstOf is m restricted to the first n of its sorted keys, bounding an
// exception's detail.
func firstOf(m map[string]string, keys []string, n int) map[string]string {
	out := make(map[string]string, min(n, len(keys)))
	for _, k := range firstN(keys, n) {
		out[k] = m[k]
	}
	return out
}

// placeItems ties each item to the collection (by its payment, or the
// subscription of an instalment) or the refund it is for. Fees follow the
// payment they were charged on. An item of a type that is neither a line
// nor a fee, or about nothing of ours, is kept unmatched.
func (r *Reconciler) placeItems(ctx context.Context, tx pgx.Tx, f *fetchedPayout) ([]ledger.PayoutItem, error) {
	payments, refunds, subs := set{}, set{}, set{}
	for _, it := range f.items {
		payments.add(it.Links.Payment)
		refunds.add(it.Links.Refund)
	}
	for _, s := range f.instalments {
		subs.add(s)
	}
	byPayment, err := ledger.CollectionsByPayments(ctx, tx, payments.list())
	if err != nil {
		return nil, err
	}
	bySub, err := ledger.CollectionsBySubscriptions(ctx, tx, subs.list())
	if err != nil {
		return nil, err
	}
	byRefund, err := ledger.RefundsByGC(ctx, tx, refunds.list())
	if err != nil {
		return nil, err
	}
	var refundCols []int64
	for _, rf := range byRefund {
		refundCols = append(refundCols, rf.CollectionID)
	}
	byID, err := ledger.CollectionsByIDs(ctx, tx, refundCols)
	if err != nil {
		return nil, err
	}
	f.collections, f.erpRefunds = map[int64]ledger.Collection{}, map[int64]string{}
	for _, rf := range byRefund {
		f.erpRefunds[rf.ID] = rf.Key.RefundID
	}
	items := make([]ledger.PayoutItem, len(f.items))
	for i, it := range f.items {
		taxes, err := json.Marshal(it.Taxes)
		if err != nil || it.Taxes == nil {
			taxes = []byte(`[]`)
		}
		li := ledger.PayoutItem{Seq: i + 1, Type: it.Type, AmountTenths: f.tenths[i], PaymentID: it.Links.Payment,
			MandateID: it.Links.Mandate, RefundID: it.Links.Refund, Taxes: taxes}
		_, line := payoutLineKinds[it.Type]
		_, fee := payoutFeeKinds[it.Type]
		var col ledger.Collection
		found := false
		if rf, ok := byRefund[it.Links.Refund]; ok && it.Links.Refund != "" {
			col, found = byID[rf.CollectionID]
			li.RefundRowID = rf.ID
		}
		if !found && it.Links.Payment != "" {
			if col, found = byPayment[it.Links.Payment]; !found {
				col, found = bySub[f.instalments[it.Links.Payment]]
			}
		}
		if found && (line || fee) {
			f.collections[col.ID] = col
			li.Matched, li.CollectionID = true, col.ID
			li.ERP, li.ERPConnectionID, li.Company, li.InvoiceID = col.Key.ERP, col.Key.ConnectionID, col.Key.Company, col.Key.InvoiceID
		} else {
			li.RefundRowID = 0
		}
		items[i] = li
	}
	return items, nil
}

// payoutRow is the payouts row of a fetched payout.
func payoutRow(f *fetchedPayout, eventID string, items []ledger.PayoutItem) ledger.Payout {
	po := f.payout
	p := ledger.Payout{GCConnectionID: f.conn.ID, GCPayoutID: po.ID, CreditorID: po.Links.Creditor,
		CreditorBankAccount: po.Links.CreditorBankAccount, PayoutType: po.PayoutType, Currency: po.Currency,
		AmountMinor: po.Amount, DeductedFeesMinor: po.DeductedFees, Reference: po.Reference, GCStatus: po.Status,
		GCCreatedAt: po.CreatedAt, TaxCurrency: po.TaxCurrency, Metadata: po.Metadata, ItemsCount: len(items),
		ItemsTotalTenths: f.sum, EventID: eventID}
	if d, err := time.Parse(time.DateOnly, po.ArrivalDate); err == nil {
		p.ArrivalDate = d
	}
	if fx := po.FX; fx != nil {
		p.FXCurrency, p.FXAmountMinor = fx.FXCurrency, fx.FXAmount
		p.FXExchangeRate, p.FXEstimatedExchangeRate = fx.ExchangeRate, fx.EstimatedExchangeRate
	}
	for _, it := range items {
		if _, fee := payoutFeeKinds[it.Type]; fee {
			p.FeesTotalTenths += it.AmountTenths
		}
		if !it.Matched {
			p.UnmatchedCount++
		}
	}
	return p
}

// deposit is one deposit of a payout being built: its payout_postings row
// and its erp-poster request.
type deposit struct {
	row ledger.PayoutDeposit
	req *mlcv1.PostPayoutRequest
	// fees are the fee items, whose amounts are set once the deposit's
	// total is known (see settleFees), with their exact tenths.
	fees       []*mlcv1.PayoutFee
	feeTenths  []int64
	feeTaxes   [][]gocardless.PayoutItemTax
	amountSent int64 // the deposit's amount_minor
}

// deposits builds one deposit per ERP connection and company from the
// matched items, in item order. It also returns the lines that are not
// whole minor units, which no deposit can carry (GoCardless documents
// payments, refunds and charge-backs in whole minor units; only fees are
// kept finer).
func (r *Reconciler) deposits(f *fetchedPayout, p ledger.Payout, items []ledger.PayoutItem) ([]*deposit, []string, error) {
	type key struct {
		conn    int64
		company string
	}
	var order []key
	byKey := map[key]*deposit{}
	var fractional []string
	for i, it := range items {
		if !it.Matched {
			continue
		}
		k := key{it.ERPConnectionID, it.Company}
		d := byKey[k]
		if d == nil {
			ref, err := erpRef(f.reg, it.ERP, it.ERPConnectionID, it.Company)
			if err != nil {
				return nil, nil, err
			}
			d = &deposit{
				row: ledger.PayoutDeposit{ERP: it.ERP, ERPConnectionID: it.ERPConnectionID, Company: it.Company,
					OutcomeID: mlcv1.PayoutKey(ref, p.GCPayoutID)}, // erp-poster's key of the posting
				req: payoutRequest(f, ref),
			}
			byKey[k] = d
			order = append(order, k)
		}
		if kind, ok := payoutLineKinds[it.Type]; ok {
			if it.AmountTenths%10 != 0 {
				fractional = append(fractional, fmt.Sprintf("#%d %s %s", it.Seq, it.Type, money.FormatTenths(it.AmountTenths)))
				continue
			}
			col := f.collections[it.CollectionID]
			d.req.Lines = append(d.req.Lines, &mlcv1.PayoutLine{Kind: kind, AmountMinor: it.AmountTenths / 10,
				// A refund item need not link its payment; the collection's is it.
				PaymentId: cmp.Or(it.PaymentID, col.GCPaymentID), RefundId: it.RefundID,
				Invoice:    &mlcv1.InvoiceKey{InvoiceId: col.Key.InvoiceID, InvoiceNo: col.InvoiceNo, DocType: col.DocType, Suffix: col.Suffix},
				CustomerId: col.CustomerID, BusinessUnit: col.BusinessUnit, ErpRefundId: f.erpRefunds[it.RefundRowID]})
			d.row.LinesTenths += it.AmountTenths
			d.row.LineCount++
			continue
		}
		d.fees = append(d.fees, &mlcv1.PayoutFee{Kind: payoutFeeKinds[it.Type], PaymentId: it.PaymentID})
		d.feeTenths = append(d.feeTenths, it.AmountTenths)
		d.feeTaxes = append(d.feeTaxes, f.items[i].Taxes)
		d.row.FeesTenths += it.AmountTenths
	}
	if len(fractional) > 0 {
		return nil, fractional, nil // the caller raises them; nothing is posted
	}
	// Each deposit's amount in whole minor units. Together, with nothing
	// unmatched, they are the payout's amount as GoCardless rounded it:
	// each share rounded down or up, the largest remainders up (see
	// allocate). With unmatched items the shares are not the whole payout,
	// and each is rounded half away from zero.
	out := make([]*deposit, len(order))
	shares := make([]int64, len(order))
	for i, k := range order {
		out[i] = byKey[k]
		shares[i] = out[i].row.LinesTenths + out[i].row.FeesTenths
	}
	amounts := make([]int64, len(order))
	if p.UnmatchedCount == 0 {
		var err error
		if amounts, err = allocate(shares, p.AmountMinor); err != nil {
			return nil, nil, fmt.Errorf("payout %s of %d: %w", p.GCPayoutID, p.AmountMinor, err)
		}
	} else {
		for i, t := range shares {
			amounts[i] = roundHalfAway(t)
		}
	}
	for i, d := range out {
		d.amountSent = amounts[i]
		if err := d.settleFees(d.amountSent-d.row.LinesTenths/10, p.Currency); err != nil {
			return nil, nil, fmt.Errorf("payout %s deposit %s: %w", p.GCPayoutID, d.row.OutcomeID, err)
		}
		d.req.AmountMinor = d.amountSent
	}
	return out, fractional, nil
}

// maxDepositLines and maxDepositFees are what erp-poster takes in one
// deposit (variables only so that a test can lower them).
var maxDepositLines, maxDepositFees = mlcv1.MaxPayoutLines, mlcv1.MaxPayoutFees

// tooLarge says which deposit has more lines or fees than erp-poster
// takes in one request; "" when none has.
func tooLarge(deposits []*deposit) string {
	for _, d := range deposits {
		if len(d.req.GetLines()) > maxDepositLines || len(d.req.GetFees()) > maxDepositFees {
			return fmt.Sprintf("its deposit into %s company %s has %d lines and %d fees, more than erp-poster takes in one deposit (%d lines, %d fees)",
				d.req.GetErp().GetConnection(), d.req.GetErp().GetCompany(), len(d.req.GetLines()), len(d.req.GetFees()), maxDepositLines, maxDepositFees)
		}
	}
	return ""
}

// settleFees sets the deposit's fee lines so that they add up to total
// minor units, the part of the deposit that is fees. GoCardless keeps fees
// to a tenth of a minor unit and rounds only their sum into the payout;
// an ERP books whole units, so the fee lines are allocated (see allocate):
// every line is within a minor unit of GoCardless's figure and none of
// the rounding is lost or made up. The exact tenths stay in payout_items
// and payout_postings. Lines that round to zero are left out (the request
// refuses zero).
func (d *deposit) settleFees(total int64, currency string) error {
	amounts, err := allocate(d.feeTenths, total)
	if err != nil {
		return fmt.Errorf("fees of %s: %w", money.FormatTenths(d.row.FeesTenths), err)
	}
	d.req.Fees, d.req.FeesMinor = nil, total
	for i, fee := range d.fees {
		if amounts[i] == 0 {
			continue
		}
		fee.AmountMinor = amounts[i]
		feeTaxes(fee, d.feeTaxes[i], currency)
		d.req.Fees = append(d.req.Fees, fee)
	}
	return nil
}

// allocate turns parts given in tenths of a minor unit into whole minor
// units that add up to total exactly: each part rounded down, then the
// parts with the largest remainders (the first of equals) one up until
// the total is reached (the largest-remainder method). Every part moves
// by less than a unit. It fails when total is not the parts' sum rounded
// down or up, a difference rounding cannot explain.
func allocate(tenths []int64, total int64) ([]int64, error) {
	amounts := make([]int64, len(tenths))
	var floorSum, sum int64
	for i, t := range tenths {
		amounts[i] = floorDiv(t, 10)
		floorSum += amounts[i]
		sum += t
	}
	// The total must be the parts' sum rounded down or up; then fewer
	// parts go up than have a remainder.
	if total < floorDiv(sum, 10) || total > floorDiv(sum+9, 10) {
		return nil, fmt.Errorf("parts adding up to %s cannot be rounded to a total of %d", money.FormatTenths(sum), total)
	}
	up := total - floorSum
	byRemainder := make([]int, len(amounts))
	for i := range byRemainder {
		byRemainder[i] = i
	}
	slices.SortStableFunc(byRemainder, func(a, b int) int {
		return cmp.Compare(tenths[b]-10*amounts[b], tenths[a]-10*amounts[a])
	})
	for _, i := range byRemainder[:up] {
		amounts[i]++
	}
	return amounts, nil
}

// audit is what the deposit's audit entry adds: the amounts sent and how
// far rounding moved them from GoCardless's tenths.
func (d *deposit) audit() map[string]any {
	return map[string]any{"amount_minor": d.amountSent, "fees_minor": d.req.GetFeesMinor(),
		"rounding_tenths": d.amountSent*10 - d.row.LinesTenths - d.row.FeesTenths}
}

// payoutRequest is the part of a deposit's request every deposit of the
// payout shares.
func payoutRequest(f *fetchedPayout, ref *mlcv1.ErpRef) *mlcv1.PostPayoutRequest {
	po := f.payout
	req := &mlcv1.PostPayoutRequest{Erp: ref, PayoutId: po.ID, Reference: po.Reference, ArrivalDate: po.ArrivalDate,
		Currency: po.Currency, PayoutAmountMinor: po.Amount, CreditorId: po.Links.Creditor, PaidAt: ts(f.at),
		TaxCurrency: po.TaxCurrency}
	if fx := po.FX; fx != nil {
		req.Fx = &mlcv1.PayoutFx{FxCurrency: fx.FXCurrency, ExchangeRate: fx.ExchangeRate, EstimatedExchangeRate: fx.EstimatedExchangeRate}
		if fx.FXAmount != nil {
			req.Fx.FxAmountMinor = *fx.FXAmount
		}
	}
	return req
}

// feeTaxes sets a fee's tax from its item's taxes, in whole minor units
// rounded half away from zero (the tax is a breakdown of the fee for the
// VAT return, not an amount of the deposit). The tax takes the fee's sign,
// as the request wants it, whichever sign GoCardless wrote it with; its
// amount is in the payout's currency, its destination amount in the tax
// currency (the same amount when no exchange applied).
func feeTaxes(fee *mlcv1.PayoutFee, taxes []gocardless.PayoutItemTax, currency string) {
	var amount, dest int64
	for _, t := range taxes {
		a, _ := t.Tenths() // read before the payout was stored (checkTaxes)
		d := a
		if t.DestinationAmount != "" {
			d, _ = gocardless.ParseTenths(t.DestinationAmount)
		}
		amount, dest = amount+abs(a), dest+abs(d)
		if fee.TaxRateId == "" {
			fee.TaxRateId, fee.TaxExchangeRate = t.TaxRateID, t.ExchangeRate
		}
	}
	sign := int64(1)
	if fee.AmountMinor < 0 {
		sign = -1
	}
	fee.TaxMinor, fee.TaxAmountMinor = sign*roundHalfAway(amount), sign*roundHalfAway(dest)
}

// roundHalfAway rounds tenths of a minor unit to the minor unit, half
// away from zero.
func roundHalfAway(t int64) int64 {
	if t < 0 {
		return -((-t + 5) / 10)
	}
	return (t + 5) / 10
}

// floorDiv is a / b rounded towards minus infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// flushPayout posts a payout's queued deposits, in order, with no
// transaction open. A deposit erp-poster is still writing ends the flush
// without an error: the event is done with, and FlushPayouts posts the
// rest once erp-poster has finished.
func (r *Reconciler) flushPayout(ctx context.Context, poID string) error {
	pending, err := r.ledger.PendingOutcomes(ctx, ledger.PayoutAggregate, poID)
	if err != nil {
		return err
	}
	for _, o := range pending {
		err := r.post(ctx, o)
		if errors.Is(err, errPostingInProgress) {
			r.log.InfoContext(ctx, "payout deposit still being posted; left queued", "payout", poID, "outcome", o.OutcomeID)
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// flushBatch bounds the payouts one FlushPayouts pass posts.
const flushBatch = 1000

// FlushPayouts posts the deposits still queued, payout by payout, oldest
// first: those left in progress by their event (see errPostingInProgress)
// and those whose event failed after queueing them. Replicas may flush at
// once: erp-poster's claim lets one write and answers the others ABORTED.
// It returns how many payouts still have deposits queued when it is done.
func (r *Reconciler) FlushPayouts(ctx context.Context) (int, error) {
	ids, err := r.ledger.PendingAggregates(ctx, ledger.PayoutAggregate, flushBatch)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, id := range ids {
		if err := r.flushPayout(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	left, err := r.ledger.PendingAggregates(ctx, ledger.PayoutAggregate, flushBatch)
	return len(left), errors.Join(append(errs, err)...)
}

// RunPayoutFlush runs FlushPayouts every interval until ctx ends.
func (r *Reconciler) RunPayoutFlush(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := r.FlushPayouts(ctx); err != nil {
				r.log.WarnContext(ctx, "payout flush", "error", err)
			}
		}
	}
}

// gcAccount is the GoCardless connection an event came from, and its
// client; events received without one (single-account webhooks) belong
// to the only GoCardless connection.
func (r *Reconciler) gcAccount(ctx context.Context, name string) (connections.Connection, *gocardless.Client, error) {
	if name == "" {
		all, err := r.dir.GoCardlessConnections(ctx)
		if err != nil {
			return connections.Connection{}, nil, err
		}
		if len(all) != 1 {
			return connections.Connection{}, nil, fmt.Errorf("event without a GoCardless connection and %d connections exist", len(all))
		}
		name = all[0].Name
	}
	return r.dir.GoCardless(ctx, name)
}

// maxPayoutItems is at most DefaultMaxPayoutItems, which keeps sums of
// items inside int64 (see maxTenths).
func (r *Reconciler) maxPayoutItems() int {
	if r.MaxPayoutItems > 0 {
		return min(r.MaxPayoutItems, DefaultMaxPayoutItems)
	}
	return DefaultMaxPayoutItems
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// set is a set of non-empty strings.
type set map[string]struct{}

func (s set) add(v string) {
	if v != "" {
		s[v] = struct{}{}
	}
}

func (s set) list() []string { return slices.Sorted(maps.Keys(s)) }

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }
