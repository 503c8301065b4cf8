package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A payout storing its items must not wait on a refund event that holds
// the refund and its collection: the items' foreign keys refer to both.
// Under FOR UPDATE it did, and the refund event, taking the two in the
// other order, deadlocked with it (seen in make bench-e2e as a payout's
// event retried after "deadlock detected").
func TestPayoutItemsDoNotWaitOnLockedCollectionsAndRefunds(t *testing.T) {
	ctx := context.Background()
	l, conn := newLedger(t)
	col, _, err := l.StartCollection(ctx, testCollection(conn, "INV-1", 1000))
	if err != nil {
		t.Fatal(err)
	}
	var refundID int64
	if err := l.Tx(ctx, func(tx pgx.Tx) error {
		r, _, err := StartRefund(ctx, tx, Refund{Key: RefundKey{ERP: "ifs", ConnectionID: conn, Company: "10", RefundID: "R1"},
			CollectionID: col.ID, AmountMinor: 100, Currency: "GBP"})
		refundID = r.ID
		if err == nil {
			_, err = tx.Exec(ctx, `UPDATE refunds SET gc_refund_id = 'RF1' WHERE id = $1`, r.ID)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// The refund event's transaction, holding both rows.
	holder, err := l.DB().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := LockRefundByGC(ctx, holder, "RF1"); err != nil {
		t.Fatal(err)
	}
	if _, err := LockCollectionByID(ctx, holder, col.ID); err != nil {
		t.Fatal(err)
	}

	// The payout's transaction: a lock wait fails it rather than hangs.
	err = l.Tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '2s'`); err != nil {
			return err
		}
		p := Payout{GCConnectionID: conn, GCPayoutID: "PO1", CreditorID: "CR1", PayoutType: "merchant", Currency: "GBP",
			AmountMinor: 900, Reference: "REF", GCStatus: "paid", GCCreatedAt: time.Now(), ItemsCount: 2, EventID: "EVP1"}
		items := []PayoutItem{
			{Seq: 1, Type: "payment_paid_out", AmountTenths: 10000, PaymentID: "PM1", Matched: true, CollectionID: col.ID,
				ERP: "ifs", ERPConnectionID: conn, Company: "10", InvoiceID: "INV-1"},
			{Seq: 2, Type: "refund", AmountTenths: -1000, PaymentID: "PM1", RefundID: "RF1", Matched: true, CollectionID: col.ID,
				RefundRowID: refundID, ERP: "ifs", ERPConnectionID: conn, Company: "10", InvoiceID: "INV-1"},
		}
		_, stored, err := InsertPayout(ctx, tx, p, items)
		if err == nil && !stored {
			t.Error("payout not stored")
		}
		return err
	})
	if err != nil {
		t.Fatalf("storing a payout while its collection and refund are locked: %v", err)
	}
}
