package views

import (
	"context"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

// Every kind the orchestrator raises about payouts and mandates is
// explained in its own words, read through the queue as the console shows
// it, not the fallback that only repeats the kind.
func TestExplainsPayoutAndMandateKinds(t *testing.T) {
	ctx := context.Background()
	db := testsupport.Pool(t)
	v := New(db, operator.NewDesk(db, nil, nil)) // the desk reads the items' notes
	// kind -> aggregate, and words its explanation must hold.
	kinds := map[string][2]string{
		"payout_mismatch":           {"payout PO123", "do not add up"},
		"payout_duplicate_payment":  {"payout PO123", "already paid out"},
		"payout_unmatched_items":    {"payout PO123", "no invoice or refund"},
		"payout_fractional_amount":  {"payout PO123", "finer than a whole minor unit"},
		"payout_too_large":          {"payout PO123", "PAYOUT_MAX_ITEMS"},
		"payout_unreadable":         {"payout PO123", "could not be read"},
		"mandate_ended":             {"collection ifs-acme:10:INV-1", "mandate ended"},
		"mandate_request_expired":   {"customer ifs-acme:10:C1", "did not authorise"},
		"mandate_not_authorised":    {"customer ifs-acme:10:C1", "did not authorise"},
		"mandate_request_cancelled": {"customer ifs-acme:10:C1", "closed the mandate request"},
		"mandate_request_failed":    {"customer ifs-acme:10:C1", "closed the mandate request"},
		"mandate_unusable":          {"customer ifs-acme:10:C1", "cannot be used"},
		"no_bank_details":           {"collection ifs-acme:10:INV-2", "no usable bank details"},
		"erp_record_invalid":        {"ifs_invoice ifs-acme/10/INV-9", "could not be published"},
		"erp_posting_refused":       {"payout PO123", "refused the deposit"},
	}
	for kind, c := range kinds {
		typ, id, _ := strings.Cut(c[0], " ")
		if _, err := db.Exec(ctx, `INSERT INTO exceptions (kind, aggregate_type, aggregate_id, reason) VALUES ($1, $2, $3, 'the reason')`,
			kind, typ, id); err != nil {
			t.Fatal(err)
		}
	}
	f := Filter{Limit: 100}
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	page, err := v.Queue(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, it := range page.Items {
		c, ok := kinds[it.Kind]
		if !ok {
			continue
		}
		seen[it.Kind] = true
		if !strings.Contains(it.Explanation, c[1]) || !strings.Contains(it.Explanation, "the reason") {
			t.Errorf("%s explained as %q, want it to say %q and the reason", it.Kind, it.Explanation, c[1])
		}
		if strings.HasPrefix(it.Kind, "payout_") && !strings.Contains(it.Explanation, "payout PO123") {
			t.Errorf("%s explained as %q, want it to name payout PO123", it.Kind, it.Explanation)
		}
		if it.WhatToDo == "" || strings.HasPrefix(it.WhatToDo, "Read the reason; escalate if unclear") {
			t.Errorf("%s: what to do %q is the fallback's", it.Kind, it.WhatToDo)
		}
	}
	if len(seen) != len(kinds) {
		t.Errorf("the queue showed %d of the %d kinds: %v", len(seen), len(kinds), seen)
	}
}
