// Package views reads what the console's pages show from the database the
// services write: the exceptions queue, the overview per connection and
// company, and a collection's surroundings. It only reads; every action goes
// through the orchestrator's operator package. Amounts stay in minor units
// (int64) and are formatted with the currency's exact decimals; a float
// never holds money here.
package views

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/audit"

	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

// Views reads the console's pages.
type Views struct {
	db   *pgxpool.Pool
	desk *operator.Desk

	mu       sync.Mutex
	counts   map[string]counted // by filter, see totals
	counting map[string]bool    // filters being recounted in the background
	gen      uint64             // advanced by Forget
	now      func() time.Time
	keys     *audit.Keys // checks the audit rows' MACs; nil checks hashes only
}

// New returns the views of db; desk lists the notes operators wrote.
func New(db *pgxpool.Pool, desk *operator.Desk) *Views {
	return &Views{db: db, desk: desk, counts: map[string]counted{}, counting: map[string]bool{}, now: time.Now}
}

// CheckMACs makes the collection page's audit status check every row's
// MAC under keys (the keys the services sign with), and returns v.
func (v *Views) CheckMACs(keys *audit.Keys) *Views {
	v.keys = keys
	return v
}

// Item is one thing in the exceptions queue: a row of the exceptions table,
// or a failed, cancelled or charged-back collection nobody has acted on
// yet (GoCardless's failure is itself the exception).
type Item struct {
	// Ref names the item in forms and URLs: "exception:ID" or "collection:ID".
	Ref          string    `json:"ref"`
	ExceptionID  int64     `json:"exception_id,omitempty"`
	CollectionID int64     `json:"collection_id,omitempty"`
	Kind         string    `json:"kind"`
	Status       string    `json:"status"`
	Connection   string    `json:"connection,omitempty"`
	Company      string    `json:"company,omitempty"`
	Document     string    `json:"document,omitempty"`
	Subject      string    `json:"subject"` // what it is about: aggregate type and id
	Reason       string    `json:"reason"`
	Amount       *Amount   `json:"amount,omitempty"`
	State        string    `json:"collection_state,omitempty"`
	Replayable   bool      `json:"replayable"`
	Since        time.Time `json:"since"`
	Explanation  string    `json:"explanation"`
	WhatToDo     string    `json:"what_to_do"`
	Notes        []Note    `json:"notes"`
}

// Note is an operator's note on an item.
type Note = operator.Note

// Filter narrows the queue. Zero values match everything.
type Filter struct {
	Connection string
	Company    string
	// Reason matches the kind (invalid_invoice, payment_failed, ...) or
	// the failure cause GoCardless gave (insufficient_funds, ...).
	Reason string
	// Document keeps the items about one ERP document.
	Document string
	// OlderThan keeps items at least this old.
	OlderThan time.Duration
	// Status is open (the default), escalated, replayed, resolved or all.
	Status string
	Limit  int
	Offset int
	// Before, when set, starts the page after this item (keyset paging:
	// a page deep in the queue costs what the first does, where Offset
	// builds and skips every item before it).
	Before *Cursor
}

// Cursor names an item's place in the queue, newest first.
type Cursor struct {
	Since time.Time `json:"before"`
	Ref   string    `json:"before_ref"`
}

var refPattern = regexp.MustCompile(`^(exception|collection):[0-9]{1,18}$`)

// Bounds of a filter, checked before any query runs.
const (
	MaxPageSize  = 200
	maxFilterLen = 500
)

// Statuses an item can be filtered by.
var Statuses = []string{"open", "escalated", "replayed", "resolved", "all"}

// Check normalises f and says what is wrong with it.
func (f *Filter) Check() error {
	if f.Status == "" {
		f.Status = "open"
	}
	valid := false
	for _, s := range Statuses {
		valid = valid || s == f.Status
	}
	if !valid {
		return fmt.Errorf("status %q: want one of %s", f.Status, strings.Join(Statuses, ", "))
	}
	for name, v := range map[string]string{"connection": f.Connection, "company": f.Company, "reason": f.Reason, "document": f.Document} {
		if len(v) > maxFilterLen {
			return fmt.Errorf("%s: longer than %d characters", name, maxFilterLen)
		}
	}
	if f.OlderThan < 0 || f.OlderThan > 10*365*24*time.Hour {
		return errors.New("age: between 0 and 10 years")
	}
	if f.Limit <= 0 || f.Limit > MaxPageSize {
		f.Limit = 50
	}
	if f.Offset < 0 || f.Offset > 1_000_000 {
		return errors.New("offset: between 0 and 1000000")
	}
	if f.Before != nil && (!refPattern.MatchString(f.Before.Ref) || f.Before.Since.IsZero() || f.Offset != 0) {
		return errors.New("before: an item's time and ref (exception:N or collection:N), without an offset")
	}
	return nil
}

// Page is one page of the queue and what the whole filtered queue holds.
type Page struct {
	Items  []Item   `json:"items"`
	Total  int      `json:"total"`
	Totals []Amount `json:"totals"` // by currency, over every matching item with an amount
	// Next is where the next (older) page starts; nil on the last page.
	Next *Cursor `json:"next,omitempty"`
	// CountedAt is when Total and Totals were counted (they are reused
	// for a few seconds).
	CountedAt time.Time `json:"counted_at"`
	Filter    struct {
		Connection string `json:"connection"`
		Company    string `json:"company"`
		Reason     string `json:"reason"`
		Status     string `json:"status"`
		OlderThan  string `json:"older_than"`
		Limit      int    `json:"limit"`
		Offset     int    `json:"offset"`
	} `json:"filter"`
}

// exceptionItems are the exceptions with the collection they are about.
const exceptionItems = `
	SELECT 'exception:' || e.id AS ref, e.id AS exception_id, col.id AS collection_id, e.kind, e.status,
	       coalesce(cn.name, '') AS connection, coalesce(k.company, '') AS company, coalesce(k.doc, '') AS document,
	       e.aggregate_type || ' ' || e.aggregate_id AS subject, e.reason, coalesce(col.failure_cause, '') AS cause,
	       col.amount_minor, col.currency, coalesce(col.state, '') AS state, coalesce(col.kind, '') AS col_kind, e.created_at AS since,
	       1 AS half, e.id AS tie
	FROM exceptions e
	CROSS JOIN LATERAL (SELECT
		CASE WHEN e.aggregate_id ~ '^(ifs|jde):[0-9]+:' THEN split_part(e.aggregate_id, ':', 2) END AS conn_id,
		CASE WHEN e.aggregate_id ~ '^(ifs|jde):[0-9]+:' THEN NULL
		     WHEN e.aggregate_type IN ('invoice', 'customer', 'refund') THEN split_part(e.aggregate_id, ':', 1) END AS conn_name,
		CASE WHEN e.aggregate_id ~ '^(ifs|jde):[0-9]+:' THEN split_part(e.aggregate_id, ':', 3)
		     WHEN e.aggregate_type IN ('invoice', 'customer', 'refund') THEN split_part(e.aggregate_id, ':', 2) END AS company,
		CASE WHEN e.aggregate_id ~ '^(ifs|jde):[0-9]+:' THEN substring(e.aggregate_id FROM '^[a-z]+:[0-9]+:[^:]*:(.*)$')
		     WHEN e.aggregate_type IN ('invoice', 'customer', 'refund') THEN substring(e.aggregate_id FROM '^[^:]*:[^:]*:(.*)$') END AS doc
	) k
	LEFT JOIN connections cn ON cn.id::text = k.conn_id OR cn.name = k.conn_name
	-- LATERAL with LIMIT: one index lookup per exception, never a hash
	-- join over every collection.
	LEFT JOIN LATERAL (SELECT c2.id, c2.failure_cause, c2.amount_minor, c2.currency, c2.state, c2.kind FROM collections c2
	     WHERE e.aggregate_type IN ('invoice', 'collection')
	       AND c2.connection_id = cn.id AND c2.company = k.company AND c2.invoice_id = k.doc LIMIT 1) col ON true
	WHERE ($1 = '' OR e.status = $1)
`

// collectionItems are the failed collections no exception speaks for yet.
// Its state list is the predicate of collections_unsettled_idx (migration
// 00013), which serves them newest first: keep the two the same.
const collectionItems = `
	SELECT 'collection:' || col.id AS ref, NULL::bigint AS exception_id, col.id AS collection_id, 'payment_' || col.state AS kind, 'open' AS status,
	       cn.name AS connection, col.company, col.invoice_id AS document,
	       'collection ' || cn.name || ':' || col.company || ':' || col.invoice_id AS subject,
	       concat_ws(': ', nullif(col.failure_reason_code, ''), nullif(col.failure_description, '')) AS reason, coalesce(col.failure_cause, '') AS cause,
	       col.amount_minor, col.currency, col.state, col.kind AS col_kind, col.updated_at AS since,
	       0 AS half, col.id AS tie
	FROM collections col JOIN connections cn ON cn.id = col.connection_id
	WHERE col.state IN ('failed', 'cancelled', 'charged_back', 'exception') AND ($1 = '' OR $1 = 'open')
	  AND NOT EXISTS (SELECT 1 FROM exceptions x WHERE
	        (x.aggregate_type = 'invoice' AND x.aggregate_id = cn.name || ':' || col.company || ':' || col.invoice_id)
	     OR (x.aggregate_type = 'collection' AND x.aggregate_id = col.erp || ':' || col.connection_id || ':' || col.company || ':' || col.invoice_id))
`

// itemFilter applies $2 to $6 to a set of items.
const itemFilter = `
WHERE ($2 = '' OR connection = $2) AND ($3 = '' OR company = $3) AND ($4 = '' OR kind = $4 OR cause = $4)
  AND since <= $5 AND ($6 = '' OR document = $6)`

// queueSQL is the queue: exceptions (whose aggregate id names the
// connection either by name, "conn:company:doc", or by ledger id,
// "erp:connID:company:doc") with the collection they are about, if any,
// and the failed collections no exception row speaks for yet. $1 status
// (” for all), $2 connection, $3 company, $4 reason, $5 created before,
// $6 document.
const queueSQL = `WITH items AS (` + exceptionItems + ` UNION ALL ` + collectionItems + `) SELECT * FROM items` + itemFilter

// pageSQL is one page of the queue, newest first (ties, common when a
// batch commits together, by exceptions before collections and then by
// id, newest first): each half is cut to the page's end before the two
// are merged, so that an index in exactly that order (migration 00013)
// serves it instead of every item being built and sorted. $7 limit, $8
// offset, and the page starts after the item ($9 since, $10 half, $11
// id): the row comparison lets the index scan start there (keyset
// paging).
const pageSQL = `(SELECT * FROM (` + exceptionItems + `) a` + itemFilter + pageCursor + ` ORDER BY since DESC, tie DESC LIMIT $7::bigint + $8::bigint)
UNION ALL
(SELECT * FROM (` + collectionItems + `) b` + itemFilter + pageCursor + ` ORDER BY since DESC, tie DESC LIMIT $7::bigint + $8::bigint)
ORDER BY since DESC, half DESC, tie DESC LIMIT $7 OFFSET $8`

const pageCursor = ` AND (since, half, tie) < ($9::timestamptz, $10::int, $11::bigint)`

// itemsSQL is the queue items with the given ids, exceptions $7 and
// collections $8, found through their primary keys rather than by
// building the whole queue and matching refs.
const itemsSQL = `SELECT * FROM (` + exceptionItems + `) a` + itemFilter + ` AND tie = ANY($7::bigint[])
UNION ALL
SELECT * FROM (` + collectionItems + `) b` + itemFilter + ` AND tie = ANY($8::bigint[])`

// customPlan runs a queue query as an unnamed statement, which Postgres
// plans for the values given each time. A cached statement may switch to
// a generic plan after five runs, and for the queue's optional filters
// ("$2 = ” OR connection = $2") that plan can use no index: at 1,000,000
// collections it took 200 ms where the planned-for-its-values page took
// 1 ms (EXPLAIN ANALYZE with plan_cache_mode = force_generic_plan).
const customPlan = pgx.QueryExecModeExec

// firstPage is the cursor of the first page: after every item.
var firstPage = Cursor{Since: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), Ref: "exception:9223372036854775807"}

// position is where a cursor's item sorts within its time: its half
// (exceptions 1, collections 0) and id.
func (c Cursor) position() (half int, id int64) {
	kind, n, _ := strings.Cut(c.Ref, ":")
	id, _ = strconv.ParseInt(n, 10, 64) // checked by Filter.Check
	if kind == "exception" {
		half = 1
	}
	return half, id
}

// Queue returns one page of the filtered queue, newest first, with the
// notes of the items on it and the totals of all matching items.
func (v *Views) Queue(ctx context.Context, f Filter) (Page, error) {
	if err := f.Check(); err != nil {
		return Page{}, err
	}
	var p Page
	p.Filter.Connection, p.Filter.Company, p.Filter.Reason, p.Filter.Status = f.Connection, f.Company, f.Reason, f.Status
	p.Filter.Limit, p.Filter.Offset = f.Limit, f.Offset
	if f.OlderThan > 0 {
		p.Filter.OlderThan = f.OlderThan.String()
	}
	status := f.Status
	if status == "all" {
		status = ""
	}
	before := time.Now().Add(-f.OlderThan)
	args := []any{status, f.Connection, f.Company, f.Reason, before, f.Document}

	if err := v.totals(ctx, f, args, &p); err != nil {
		return Page{}, err
	}

	from := firstPage
	if f.Before != nil {
		from = *f.Before
	}
	// One item more than the page tells whether there is a next one.
	half, id := from.position()
	rows, err := v.db.Query(ctx, pageSQL, append([]any{customPlan}, append(args, f.Limit+1, f.Offset, from.Since, half, id)...)...)
	if err != nil {
		return Page{}, fmt.Errorf("queue: %w", err)
	}
	p.Items, err = pgx.CollectRows(rows, scanItem)
	if err != nil {
		return Page{}, fmt.Errorf("queue: %w", err)
	}
	if len(p.Items) > f.Limit {
		p.Items = p.Items[:f.Limit]
		last := p.Items[len(p.Items)-1]
		p.Next = &Cursor{Since: last.Since, Ref: last.Ref}
	}
	if err := v.attachNotes(ctx, p.Items); err != nil {
		return Page{}, err
	}
	return p, nil
}

// totalsTTL is how long the count and totals of a filter are used before
// they are recounted: counting every matching item takes longer than the
// page may, so it is never done on every page view. The totals a bulk
// action states are always counted anew from the selected items.
const totalsTTL = 10 * time.Second

// recountTimeout bounds a recount made in the background.
const recountTimeout = 30 * time.Second

type counted struct {
	at     time.Time
	total  int
	totals []Amount
}

// totals fills p's count and totals. A filter counted before is answered
// from that count (its time shown on the page); once older than
// totalsTTL it is recounted in the background, one recount per filter at
// a time, so no page view waits for a recount. Only a filter never
// counted (or dropped by Forget) is counted while the request waits.
func (v *Views) totals(ctx context.Context, f Filter, args []any, p *Page) error {
	key := fmt.Sprintf("%q|%q|%q|%q|%s|%q", f.Status, f.Connection, f.Company, f.Reason, f.OlderThan, f.Document)
	v.mu.Lock()
	c, ok := v.counts[key]
	gen := v.gen
	if ok && v.now().Sub(c.at) >= totalsTTL && !v.counting[key] {
		v.counting[key] = true
		go v.recount(context.WithoutCancel(ctx), key, gen, args)
	}
	v.mu.Unlock()
	if !ok {
		var err error
		if c, err = v.count(ctx, args); err != nil {
			return err
		}
		v.keep(key, gen, c)
	}
	p.Total, p.Totals, p.CountedAt = c.total, c.totals, c.at
	return nil
}

// recount counts a filter again and keeps the result, unless Forget ran
// meanwhile (the count may predate the change it was called for).
func (v *Views) recount(ctx context.Context, key string, gen uint64, args []any) {
	ctx, cancel := context.WithTimeout(ctx, recountTimeout)
	defer cancel()
	c, err := v.count(ctx, args)
	v.mu.Lock()
	delete(v.counting, key)
	v.mu.Unlock()
	if err == nil { // else the old count stays, and the next view tries again
		v.keep(key, gen, c)
	}
}

// keep stores c as key's count if no Forget happened since gen.
func (v *Views) keep(key string, gen uint64, c counted) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if gen != v.gen {
		return
	}
	if _, ok := v.counts[key]; !ok && len(v.counts) >= 256 {
		clear(v.counts)
	}
	v.counts[key] = c
}

// count counts the items matching args and sums them per currency.
func (v *Views) count(ctx context.Context, args []any) (counted, error) {
	c := counted{at: v.now()}
	rows, err := v.db.Query(ctx, `SELECT count(*), currency, coalesce(sum(amount_minor), 0)::text FROM (`+queueSQL+`) q GROUP BY currency ORDER BY currency NULLS LAST`,
		append([]any{customPlan}, args...)...)
	if err != nil {
		return c, fmt.Errorf("queue totals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int
		var currency *string
		var sum string
		if err := rows.Scan(&n, &currency, &sum); err != nil {
			return c, fmt.Errorf("queue totals: %w", err)
		}
		c.total += n
		if currency != nil {
			minor, err := strconv.ParseInt(sum, 10, 64)
			if err != nil {
				return c, fmt.Errorf("queue totals: %s %s does not fit in 64 bits", sum, *currency)
			}
			c.totals = append(c.totals, NewAmount(minor, *currency))
		}
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("queue totals: %w", err)
	}
	return c, nil
}

// Items returns the queue items with the given refs (for bulk actions),
// in the order given; unknown refs are an error.
func (v *Views) Items(ctx context.Context, refs []string) ([]Item, error) {
	if len(refs) > MaxPageSize {
		return nil, fmt.Errorf("at most %d items at once", MaxPageSize)
	}
	var exIDs, colIDs []int64
	for _, ref := range refs {
		if !refPattern.MatchString(ref) {
			return nil, fmt.Errorf("item %q: not in the queue", ref)
		}
		half, id := Cursor{Ref: ref}.position()
		if half == 1 {
			exIDs = append(exIDs, id)
		} else {
			colIDs = append(colIDs, id)
		}
	}
	rows, err := v.db.Query(ctx, itemsSQL, customPlan, "", "", "", "", time.Now().Add(time.Hour), "", exIDs, colIDs)
	if err != nil {
		return nil, fmt.Errorf("queue items: %w", err)
	}
	found, err := pgx.CollectRows(rows, scanItem)
	if err != nil {
		return nil, fmt.Errorf("queue items: %w", err)
	}
	byRef := map[string]Item{}
	for _, it := range found {
		byRef[it.Ref] = it
	}
	out := make([]Item, 0, len(refs))
	for _, ref := range refs {
		it, ok := byRef[ref]
		if !ok {
			return nil, fmt.Errorf("item %q: not in the queue", ref)
		}
		out = append(out, it)
	}
	return out, v.attachNotes(ctx, out)
}

func scanItem(r pgx.CollectableRow) (Item, error) {
	var it Item
	var exID, colID, minor *int64
	var currency *string
	var cause, colKind string
	var half int
	var tie int64
	err := r.Scan(&it.Ref, &exID, &colID, &it.Kind, &it.Status, &it.Connection, &it.Company, &it.Document,
		&it.Subject, &it.Reason, &cause, &minor, &currency, &it.State, &colKind, &it.Since, &half, &tie)
	if err != nil {
		return it, err
	}
	if exID != nil {
		it.ExceptionID = *exID
	}
	if colID != nil {
		it.CollectionID = *colID
	}
	if minor != nil && currency != nil {
		a := NewAmount(*minor, *currency)
		it.Amount = &a
	}
	it.Replayable = colKind == "payment" && (it.State == "failed" || it.State == "cancelled" || it.State == "exception") &&
		(it.Status == "open" || it.Status == "escalated")
	it.Explanation, it.WhatToDo = explain(it, cause)
	it.Notes = []Note{}
	return it, nil
}

// attachNotes reads the notes of the items' exceptions in one query.
func (v *Views) attachNotes(ctx context.Context, items []Item) error {
	var ids []int64
	for _, it := range items {
		if it.ExceptionID != 0 {
			ids = append(ids, it.ExceptionID)
		}
	}
	notes, err := v.desk.Notes(ctx, ids)
	if err != nil {
		return err
	}
	for i := range items {
		if n := notes[items[i].ExceptionID]; n != nil {
			items[i].Notes = n
		}
	}
	return nil
}

// Forget drops the counted totals, after an action changed the queue, so
// the person who acted sees the effect at once.
func (v *Views) Forget() {
	v.mu.Lock()
	clear(v.counts)
	v.gen++
	v.mu.Unlock()
}
