package reconcile_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
)

// A payout whose fields the database or erp-poster cannot take (no bank
// reference or one longer than a statement line, an exchange rate that is
// not a number, an amount whose tenths or sums would overflow) is raised
// payout_unreadable when it is received: not stored, not posted, and not
// retried until its event is dead-lettered.
func TestPayoutFieldsCheckedOnReceipt(t *testing.T) {
	for name, edit := range map[string]func(po map[string]any){
		"no reference":   func(po map[string]any) { po["reference"] = "" },
		"long reference": func(po map[string]any) { po["reference"] = strings.Repeat("R", 141) },
		"exchange rate": func(po map[string]any) {
			po["fx"] = map[string]any{"fx_currency": "EUR", "fx_amount": 100, "exchange_rate": "1,17", "estimated_exchange_rate": nil}
		},
		"amount out of range": func(po map[string]any) { po["amount"] = float64(1 << 60) },
	} {
		t.Run(name, func(t *testing.T) {
			r := rig.New(t, rig.Options{GC: rig.Direct})
			reconcileThrough(r, editPayout(edit))
			r.Consumers("a", 2)
			collected(t, r, map[string]string{"A": "100.00"})
			settle(r, 14)
			r.Eventually(20*time.Second, "payout_unreadable", func() bool {
				return len(paidPayouts(r)) == 1 && r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'payout_unreadable' AND aggregate_id = $1`, paidPayouts(r)[0].ID) == 1
			})
			r.Drain()
			if n := r.Count(`SELECT count(*) FROM payouts`) + len(r.Poster.Payouts()); n != 0 {
				t.Errorf("%d payouts stored or deposits posted", n)
			}
			if n := r.Count(`SELECT count(*) FROM exceptions WHERE kind <> 'payout_unreadable'`); n != 0 {
				t.Errorf("%d other exceptions (dead letters, mismatches)", n)
			}
		})
	}
}

// An item whose amount is beyond what sums of a payout's items may hold
// without overflowing (2^46 tenths) is payout_unreadable, not a mismatch
// computed from a sum that may have wrapped.
func TestPayoutItemAmountOutOfRange(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	reconcileThrough(r, hugeItem{})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"A": "100.00"})
	settle(r, 14)
	r.Eventually(20*time.Second, "payout_unreadable", func() bool {
		return len(paidPayouts(r)) == 1 && r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'payout_unreadable' AND aggregate_id = $1
			AND strpos(reason, 'out of range') > 0`, paidPayouts(r)[0].ID) == 1
	})
	r.Drain()
	if n := r.Count(`SELECT count(*) FROM payouts`) + r.Count(`SELECT count(*) FROM exceptions WHERE kind <> 'payout_unreadable'`); n != 0 {
		t.Errorf("%d payouts stored or other exceptions raised", n)
	}
}

// hugeItem makes every payout's first item 10^17 minor units.
type hugeItem struct{}

func (hugeItem) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.URL.Path != "/payout_items" {
		return http.DefaultTransport.RoundTrip(req)
	}
	var doc map[string]any
	return roundTripJSON(req, &doc, func() {
		if list, _ := doc["payout_items"].([]any); len(list) > 0 {
			list[0].(map[string]any)["amount"] = "100000000000000000.0"
		}
	})
}
