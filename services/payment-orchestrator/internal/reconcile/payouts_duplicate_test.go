package reconcile_test

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
)

// cloneID is the payout GoCardless (through clonePayout) lists with the
// same items as another.
const cloneID = "PO9CLONE9"

// clonePayout answers for payout cloneID what GoCardless answers for the
// payout in of: the same amount and the same items, so the same payments
// are paid out in two payouts (a fault GoCardless does not document; the
// orchestrator must still pay every invoice out once).
type clonePayout struct{ of *atomic.Value }

func (c clonePayout) RoundTrip(req *http.Request) (*http.Response, error) {
	orig, _ := c.of.Load().(string)
	isPayout := req.URL.Path == "/payouts/"+cloneID
	switch {
	case orig == "":
	case isPayout:
		req = req.Clone(req.Context())
		req.URL.Path = "/payouts/" + orig
	case req.URL.Path == "/payout_items" && req.URL.Query().Get("payout") == cloneID:
		req = req.Clone(req.Context())
		q := req.URL.Query()
		q.Set("payout", orig)
		req.URL.RawQuery = q.Encode()
	}
	if !isPayout {
		return http.DefaultTransport.RoundTrip(req)
	}
	var doc map[string]any
	return roundTripJSON(req, &doc, func() {
		po := doc["payouts"].(map[string]any)
		po["id"], po["reference"] = cloneID, "CLONE-"+po["reference"].(string)
	})
}

// Two payouts paying out the same payments, stored at the same moment
// (held at payout_items until both have looked for the payments in stored
// payouts and found none): the database lets only one pay each payment
// out; the other is stored again, finds it, and is raised as
// payout_duplicate_payment with its items marked duplicate.
func TestPayoutsPayingOutOnePaymentTogether(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	orig := &atomic.Value{}
	reconcileThrough(r, clonePayout{of: orig})
	r.Consumers("a", 4)
	collected(t, r, map[string]string{"A": "100.00", "B": "20.00"})
	evs, paid := paidEvents(t, r) // everything happens; nothing delivered yet
	origID := paid[0].Links["payout"]
	orig.Store(origID)
	clone := paid[0]
	clone.ID = "EV9CLONE9"
	clone.Links = maps.Clone(clone.Links)
	clone.Links["payout"] = cloneID
	clone.Raw = nil

	ctx := context.Background()
	hold, err := r.DB.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback(ctx)
	// Inserts wait; the reads before them (PaidOutBefore) do not.
	if _, err := hold.Exec(ctx, `LOCK TABLE payout_items IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	publishEvents(t, r, append(evs, clone))
	r.Eventually(30*time.Second, "every payout waiting to store its items", func() bool {
		return r.Count(`SELECT count(*) FROM pg_locks l WHERE l.relation = 'payout_items'::regclass AND NOT l.granted
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`) == len(paid)+1
	})
	if err := hold.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r.Eventually(30*time.Second, "payouts posted", func() bool {
		return r.Count(`SELECT count(*) FROM payouts WHERE state = 'posted'`) == len(paid)+1
	})
	r.Drain()

	paidOut := r.Count(`SELECT count(*) FROM payout_items i JOIN payouts p ON p.id = i.payout_id
		WHERE p.gc_payout_id = $1 AND i.type = 'payment_paid_out'`, origID)
	if paidOut == 0 {
		t.Fatalf("payout %s pays out no payment", origID)
	}
	if n := r.Count(`SELECT count(*) FROM (SELECT gc_payment_id FROM payout_items WHERE type = 'payment_paid_out' AND NOT duplicate
			GROUP BY gc_payment_id HAVING count(*) <> 1) x`); n != 0 {
		t.Errorf("%d payments paid out other than once", n)
	}
	if n := r.Count(`SELECT count(*) FROM payout_items WHERE duplicate`); n != paidOut {
		t.Errorf("%d items marked duplicate, want the %d of one payout", n, paidOut)
	}
	var loser string
	if err := r.DB.QueryRow(ctx, `SELECT aggregate_id FROM exceptions WHERE kind = 'payout_duplicate_payment'`).Scan(&loser); err != nil {
		t.Fatalf("one payout_duplicate_payment exception: %v", err)
	}
	if loser != origID && loser != cloneID {
		t.Fatalf("exception on payout %s", loser)
	}
	if n := r.Count(`SELECT count(*) FROM payout_items i JOIN payouts p ON p.id = i.payout_id
			WHERE i.duplicate AND p.gc_payout_id <> $1`, loser); n != 0 {
		t.Errorf("%d items marked duplicate in the payout stored first", n)
	}
	// Posted as GoCardless paid it: the bank line holds both.
	if n, want := len(r.Poster.Payouts()), len(paid)+1; n != want {
		t.Errorf("%d deposits posted, want %d", n, want)
	}
}

// A payout that pays one payment out twice (its payment_paid_out item
// listed twice, the amount including both) is stored, raised
// payout_duplicate_payment, and not posted: its deposit would carry the
// payment twice, which JD Edwards books as one receipt and erp-poster
// refuses.
func TestPayoutPayingAPaymentOutTwiceIsNotPosted(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	reconcileThrough(r, paidOutTwice{})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"A": "100.00"})
	settle(r, 14)
	r.Eventually(20*time.Second, "payout_duplicate_payment", func() bool {
		return len(paidPayouts(r)) == 1 && r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'payout_duplicate_payment' AND aggregate_id = $1`, paidPayouts(r)[0].ID) == 1
	})
	r.Drain()
	if n := r.Count(`SELECT count(*) FROM payout_items WHERE duplicate`); n != 1 {
		t.Errorf("%d items marked duplicate, want the second", n)
	}
	if n := r.Count(`SELECT count(*) FROM payouts WHERE state = 'fetched'`); n != 1 {
		t.Errorf("%d payouts left stored and unposted, want 1", n)
	}
	if n := r.Count(`SELECT count(*) FROM payout_postings`) + len(r.Poster.Payouts()); n != 0 {
		t.Errorf("%d deposits queued or posted for a payout paying a payment out twice", n)
	}
	if n := r.Count(`SELECT count(*) FROM exceptions WHERE aggregate_type = 'payout' AND kind <> 'payout_duplicate_payment'`); n != 0 {
		t.Errorf("%d other payout exceptions", n)
	}
}

// paidOutTwice lists every payout's first payment_paid_out item twice and
// adds its amount to the payout's.
type paidOutTwice struct{}

func (paidOutTwice) RoundTrip(req *http.Request) (*http.Response, error) {
	items := req.URL.Path == "/payout_items"
	payout, isPayout := strings.CutPrefix(req.URL.Path, "/payouts/")
	if req.Method != http.MethodGet || (!items && !isPayout) {
		return http.DefaultTransport.RoundTrip(req)
	}
	var extra map[string]any // the repeated item
	if isPayout {
		list := req.Clone(req.Context())
		list.URL.Path, list.URL.RawQuery = "/payout_items", url.Values{"payout": {payout}}.Encode()
		var doc map[string]any
		if _, err := roundTripJSON(list, &doc, func() {}); err != nil {
			return nil, err
		}
		extra = firstPaidOut(doc)
	}
	var doc map[string]any
	return roundTripJSON(req, &doc, func() {
		if items {
			if it := firstPaidOut(doc); it != nil {
				doc["payout_items"] = append(doc["payout_items"].([]any), it)
			}
			return
		}
		if extra != nil {
			t, _ := gocardless.ParseTenths(extra["amount"].(string))
			po := doc["payouts"].(map[string]any)
			po["amount"] = po["amount"].(float64) + float64(t/10)
		}
	})
}

func firstPaidOut(doc map[string]any) map[string]any {
	list, _ := doc["payout_items"].([]any)
	for _, it := range list {
		if m, ok := it.(map[string]any); ok && m["type"] == gocardless.PayoutItemPaymentPaidOut {
			return m
		}
	}
	return nil
}
