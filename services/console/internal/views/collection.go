package views

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/platform/audit"
)

// Surroundings is what is around a collection besides the collection
// itself: its customer's GoCardless side, refunds, ERP postings, and the
// audit timeline of the invoice (exceptions about it) next to the
// collection's own.
type Surroundings struct {
	Customer *Customer `json:"customer"`
	Refunds  []Refund  `json:"refunds"`
	Postings []Posting `json:"erp_postings"`
}

// Customer is an ERP customer's GoCardless side.
type Customer struct {
	CustomerID     string `json:"customer_id"`
	GCCustomer     string `json:"gc_customer_id,omitempty"`
	GCBankAccount  string `json:"gc_bank_account_id,omitempty"`
	GCMandate      string `json:"gc_mandate_id,omitempty"`
	MandateStatus  string `json:"mandate_status,omitempty"`
	MandateScheme  string `json:"mandate_scheme,omitempty"`
	GCCreditor     string `json:"gc_creditor_id,omitempty"`
	NextChargeDate string `json:"mandate_next_charge_date,omitempty"`
}

// Refund is a refund of a collection.
type Refund struct {
	ERPRefundID string    `json:"erp_refund_id"`
	Amount      Amount    `json:"amount"`
	State       string    `json:"state"`
	GCRefund    string    `json:"gc_refund_id,omitempty"`
	Failure     string    `json:"failure,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Posting is an outcome written (or to be written) into the ERP.
type Posting struct {
	OutcomeID    string     `json:"outcome_id"`
	Kind         string     `json:"kind"`
	Status       string     `json:"status"`
	ERPReference string     `json:"erp_reference,omitempty"`
	Attempts     int        `json:"attempts"`
	LastError    string     `json:"last_error,omitempty"`
	PostedAt     *time.Time `json:"posted_at,omitempty"`
}

// Surround reads the surroundings of collection id (its customer by
// connection, company and customer id).
func (v *Views) Surround(ctx context.Context, collectionID int64) (Surroundings, error) {
	var s Surroundings
	var c Customer
	var next *time.Time
	err := v.db.QueryRow(ctx, `
		SELECT l.erp_customer_id, coalesce(l.gc_customer_id, ''), coalesce(l.gc_bank_account_id, ''), coalesce(l.gc_mandate_id, ''),
		       coalesce(l.mandate_status, ''), coalesce(l.mandate_scheme, ''), coalesce(l.gc_creditor_id, ''), l.mandate_next_charge_date
		FROM collections col JOIN customer_links l
		  ON l.connection_id = col.connection_id AND l.company = col.company AND l.erp_customer_id = col.customer_id
		WHERE col.id = $1`, collectionID).Scan(&c.CustomerID, &c.GCCustomer, &c.GCBankAccount, &c.GCMandate,
		&c.MandateStatus, &c.MandateScheme, &c.GCCreditor, &next)
	switch {
	case err == nil:
		if next != nil {
			c.NextChargeDate = next.Format(time.DateOnly)
		}
		s.Customer = &c
	case !errors.Is(err, pgx.ErrNoRows):
		return s, fmt.Errorf("customer of collection %d: %w", collectionID, err)
	}

	rows, err := v.db.Query(ctx, `SELECT erp_refund_id, amount_minor, currency, state, coalesce(gc_refund_id, ''),
		concat_ws(' ', failure_cause, failure_reason_code, failure_description), updated_at
		FROM refunds WHERE collection_id = $1 ORDER BY id`, collectionID)
	if err != nil {
		return s, fmt.Errorf("refunds of collection %d: %w", collectionID, err)
	}
	s.Refunds, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Refund, error) {
		var rf Refund
		var minor int64
		var currency string
		err := r.Scan(&rf.ERPRefundID, &minor, &currency, &rf.State, &rf.GCRefund, &rf.Failure, &rf.UpdatedAt)
		rf.Amount = NewAmount(minor, currency)
		return rf, err
	})
	if err != nil {
		return s, fmt.Errorf("refunds of collection %d: %w", collectionID, err)
	}

	rows, err = v.db.Query(ctx, `SELECT p.outcome_id, p.kind, p.status, coalesce(p.erp_reference, ''), p.attempts, coalesce(p.last_error, ''), p.posted_at
		FROM collections col JOIN erp_postings p ON p.connection_id = col.connection_id AND p.company = col.company AND p.invoice_id = col.invoice_id
		WHERE col.id = $1 ORDER BY p.created_at, p.outcome_id`, collectionID)
	if err != nil {
		return s, fmt.Errorf("postings of collection %d: %w", collectionID, err)
	}
	s.Postings, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Posting, error) {
		var p Posting
		err := r.Scan(&p.OutcomeID, &p.Kind, &p.Status, &p.ERPReference, &p.Attempts, &p.LastError, &p.PostedAt)
		return p, err
	})
	if err != nil {
		return s, fmt.Errorf("postings of collection %d: %w", collectionID, err)
	}
	return s, nil
}

// Event is one audit record told in words.
type Event struct {
	At      time.Time `json:"at"`
	Chain   string    `json:"chain"` // aggregate type and id
	Seq     int64     `json:"seq"`
	Who     string    `json:"who"`
	What    string    `json:"what"`
	Action  string    `json:"action"`
	Changes []string  `json:"changes"` // "state: failed → pending_submission"
	Why     string    `json:"why,omitempty"`
}

// Chain is one audit chain and whether it verifies.
type Chain struct {
	Name     string `json:"name"`
	Records  int    `json:"records"`
	Verified bool   `json:"verified"`
	// Signed: the rows' MACs were checked with the audit keys too, not
	// only the hash chain.
	Signed  bool   `json:"macs_checked"`
	Problem string `json:"problem,omitempty"`
}

// Timeline reads and verifies the audit chains of the given aggregates
// (type, id pairs) and merges their records, oldest first.
func (v *Views) Timeline(ctx context.Context, aggregates ...[2]string) ([]Event, []Chain, error) {
	var events []Event
	var chains []Chain
	for _, a := range aggregates {
		recs, err := audit.List(ctx, v.db, a[0], a[1])
		if err != nil {
			return nil, nil, err
		}
		if len(recs) == 0 {
			continue
		}
		ch := Chain{Name: a[0] + " " + a[1], Records: len(recs), Verified: true, Signed: v.keys != nil}
		// Strict, as mlcctl audit verify: with keys every row must carry
		// a MAC that verifies, so a chain rewritten by someone with write
		// access to the database (recomputed hashes, MACs dropped) shows.
		if err := audit.VerifyChain(ctx, v.db, a[0], a[1], audit.VerifyOptions{Keys: v.keys}); err != nil {
			var ce *audit.ChainError
			if !errors.As(err, &ce) {
				return nil, nil, err
			}
			ch.Verified, ch.Problem = false, ce.Error()
		}
		chains = append(chains, ch)
		for _, r := range recs {
			events = append(events, Tell(r))
		}
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].At.Before(events[j].At) })
	return events, chains, nil
}

// Tell turns an audit record into words: the action as a phrase, and each
// field that changed as "field: before → after".
func Tell(r audit.Record) Event {
	e := Event{At: r.OccurredAt, Chain: r.AggregateType + " " + r.AggregateID, Seq: r.Seq, Who: r.Actor, Action: r.Action,
		What: phrase(r.Action), Changes: []string{}}
	var p struct {
		Before json.RawMessage `json:"before"`
		After  json.RawMessage `json:"after"`
		Cause  string          `json:"cause"`
	}
	if err := json.Unmarshal(r.Payload, &p); err != nil || (p.Before == nil && p.After == nil && p.Cause == "") {
		// Not a before/after change (connection and user records): list
		// its fields as they are.
		if m, ok := decode(r.Payload).(map[string]any); ok {
			for _, k := range sortedKeys(m, nil) {
				e.Changes = append(e.Changes, k+": "+word(m[k]))
			}
		}
		return e
	}
	e.Why = p.Cause
	before, after := decode(p.Before), decode(p.After)
	bm, bok := before.(map[string]any)
	am, aok := after.(map[string]any)
	switch {
	case bok || aok:
		for _, k := range sortedKeys(bm, am) {
			b, hasB := bm[k]
			a, hasA := am[k]
			switch {
			case hasB && hasA && word(b) == word(a):
			case hasB && hasA:
				e.Changes = append(e.Changes, k+": "+word(b)+" → "+word(a))
			case hasA:
				e.Changes = append(e.Changes, k+": "+word(a))
			default:
				e.Changes = append(e.Changes, k+": "+word(b)+" → (none)")
			}
		}
	case before != nil && after != nil:
		e.Changes = append(e.Changes, word(before)+" → "+word(after))
	case after != nil:
		e.Changes = append(e.Changes, word(after))
	}
	return e
}

func sortedKeys(a, b map[string]any) []string {
	seen := map[string]bool{}
	var keys []string
	for _, m := range []map[string]any{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// decode reads JSON keeping numbers exact (amounts in minor units can
// exceed what a float64 holds).
func decode(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return nil
	}
	return v
}

// word writes a JSON value briefly.
func word(v any) string {
	switch t := v.(type) {
	case nil:
		return "(none)"
	case string:
		return t
	case json.Number:
		return t.String()
	case []any:
		parts := make([]string, len(t))
		for i, x := range t {
			parts[i] = word(x)
		}
		return strings.Join(parts, ", ")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// phrase turns "collection.replayed" into "Collection replayed".
func phrase(action string) string {
	s := strings.NewReplacer(".", " ", "_", " ").Replace(action)
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
