package views

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Overview is the state of every connection and company. Counting a
// million collections takes longer than a page may, so it is computed in
// the background (see Refresher) and shown with the time it was taken.
type Overview struct {
	TakenAt     time.Time     `json:"taken_at"`
	Took        string        `json:"took"`
	Connections []ConnHealth  `json:"connections"`
	Companies   []CompanyView `json:"companies"`
}

// ConnHealth is a connection's signals and the colour they add up to.
type ConnHealth struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Colour string `json:"status"` // green, amber, red
	Reason string `json:"reason"`
	// LastPoll is when the ERP poller last advanced its watermark (new
	// records seen); nil when it never did.
	LastPoll *time.Time `json:"last_poll_at"`
	// LastEvent is when a GoCardless event of this account was last
	// applied through the /events catch-up cursor; nil when never.
	LastCatchUp *time.Time `json:"last_catch_up_at"`
	// CatchUpLag is how long ago the catch-up cursor last moved.
	CatchUpLag string `json:"catch_up_lag"`
	// LastWebhook is when any GoCardless event was last applied; the
	// database does not record which account it came through.
	LastWebhook *time.Time `json:"last_webhook_at"`
	// RateLimit and Breaker are held in the services' memory and their
	// metrics, not in the database.
	RateLimit      string `json:"rate_limit_headroom"`
	Breaker        string `json:"breaker_state"`
	OpenExceptions int    `json:"open_exceptions"`
}

// CompanyView is the collections of one company of one ERP connection.
type CompanyView struct {
	Connection     string `json:"connection"`
	Company        string `json:"company"`
	InFlight       Bucket `json:"in_flight"`
	Collected      Bucket `json:"collected"`
	Failed         Bucket `json:"failed"`
	WaitingMandate int    `json:"customers_waiting_for_mandate"`
	OpenExceptions int    `json:"open_exceptions"`
}

// Bucket counts collections and sums their amounts per currency.
type Bucket struct {
	Count   int      `json:"count"`
	Amounts []Amount `json:"amounts"`
}

func (b *Bucket) add(n int, minor int64, currency string) error {
	b.Count += n
	for i := range b.Amounts {
		if b.Amounts[i].Currency == currency {
			s, err := Sum([]Amount{b.Amounts[i], NewAmount(minor, currency)})
			if err != nil {
				return err
			}
			b.Amounts[i] = s[0]
			return nil
		}
	}
	b.Amounts = append(b.Amounts, NewAmount(minor, currency))
	sort.Slice(b.Amounts, func(i, j int) bool { return b.Amounts[i].Currency < b.Amounts[j].Currency })
	return nil
}

// Text writes the bucket's amounts: "GBP 1,200.00 and EUR 3.00".
func (b Bucket) Text() string { return Join(b.Amounts) }

// bucketOf maps a collection state to its bucket.
var bucketOf = map[string]string{
	"creating": "in_flight", "created": "in_flight", "pending_submission": "in_flight", "submitted": "in_flight",
	"confirmed": "collected", "paid_out": "collected",
	"failed": "failed", "charged_back": "failed", "cancelled": "failed", "exception": "failed",
}

// ComputeOverview counts everything now.
func (v *Views) ComputeOverview(ctx context.Context) (Overview, error) {
	start := time.Now()
	o := Overview{TakenAt: start}
	companies := map[[2]string]*CompanyView{}
	get := func(conn, company string) *CompanyView {
		k := [2]string{conn, company}
		if companies[k] == nil {
			companies[k] = &CompanyView{Connection: conn, Company: company, InFlight: Bucket{Amounts: []Amount{}},
				Collected: Bucket{Amounts: []Amount{}}, Failed: Bucket{Amounts: []Amount{}}}
		}
		return companies[k]
	}
	rows, err := v.db.Query(ctx, `
		SELECT cn.name, col.company, col.state, col.currency, count(*), sum(col.amount_minor)::text
		FROM collections col JOIN connections cn ON cn.id = col.connection_id
		GROUP BY cn.name, col.company, col.state, col.currency`)
	if err != nil {
		return o, fmt.Errorf("overview: %w", err)
	}
	for rows.Next() {
		var conn, company, state, currency, sum string
		var n int
		if err := rows.Scan(&conn, &company, &state, &currency, &n, &sum); err != nil {
			rows.Close()
			return o, fmt.Errorf("overview: %w", err)
		}
		minor, err := strconv.ParseInt(sum, 10, 64)
		if err != nil {
			rows.Close()
			return o, fmt.Errorf("overview: %s %s: %w", sum, currency, ErrOverflow)
		}
		c := get(conn, company)
		var b *Bucket
		switch bucketOf[state] {
		case "in_flight":
			b = &c.InFlight
		case "collected":
			b = &c.Collected
		default:
			b = &c.Failed
		}
		if err := b.add(n, minor, currency); err != nil {
			rows.Close()
			return o, err
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return o, fmt.Errorf("overview: %w", err)
	}

	rows, err = v.db.Query(ctx, `
		SELECT cn.name, l.company, count(*) FROM customer_links l JOIN connections cn ON cn.id = l.connection_id
		WHERE l.gc_mandate_id IS NULL OR l.mandate_status IN ('pending_customer_approval', 'pending_submission', 'submitted')
		GROUP BY cn.name, l.company`)
	if err != nil {
		return o, fmt.Errorf("overview mandates: %w", err)
	}
	for rows.Next() {
		var conn, company string
		var n int
		if err := rows.Scan(&conn, &company, &n); err != nil {
			rows.Close()
			return o, fmt.Errorf("overview mandates: %w", err)
		}
		get(conn, company).WaitingMandate = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return o, fmt.Errorf("overview mandates: %w", err)
	}

	// Open items of the queue, per connection and company.
	rows, err = v.db.Query(ctx, `SELECT connection, company, count(*) FROM (`+queueSQL+`) q GROUP BY connection, company`,
		"open", "", "", "", time.Now().Add(time.Hour), "")
	if err != nil {
		return o, fmt.Errorf("overview exceptions: %w", err)
	}
	perConn := map[string]int{}
	for rows.Next() {
		var conn, company string
		var n int
		if err := rows.Scan(&conn, &company, &n); err != nil {
			rows.Close()
			return o, fmt.Errorf("overview exceptions: %w", err)
		}
		perConn[conn] += n
		if conn != "" && company != "" {
			get(conn, company).OpenExceptions = n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return o, fmt.Errorf("overview exceptions: %w", err)
	}

	var lastWebhook *time.Time
	if err := v.db.QueryRow(ctx, `SELECT max(processed_at) FROM processed_events WHERE source = 'gocardless'`).Scan(&lastWebhook); err != nil {
		return o, fmt.Errorf("overview webhooks: %w", err)
	}
	rows, err = v.db.Query(ctx, `
		SELECT c.name, c.kind, (SELECT max(updated_at) FROM poll_state p WHERE p.connection_id = c.id),
		       (SELECT updated_at FROM event_cursors e WHERE e.connection_id = c.id)
		FROM connections c ORDER BY c.name`)
	if err != nil {
		return o, fmt.Errorf("overview connections: %w", err)
	}
	for rows.Next() {
		h := ConnHealth{RateLimit: "unknown (kept in the services' metrics, not the database)",
			Breaker: "unknown (kept in the services' metrics, not the database)", CatchUpLag: "unknown"}
		if err := rows.Scan(&h.Name, &h.Kind, &h.LastPoll, &h.LastCatchUp); err != nil {
			rows.Close()
			return o, fmt.Errorf("overview connections: %w", err)
		}
		h.OpenExceptions = perConn[h.Name]
		if h.Kind == "gocardless" {
			h.LastWebhook = lastWebhook
			if h.LastCatchUp != nil {
				h.CatchUpLag = start.Sub(*h.LastCatchUp).Round(time.Second).String()
			}
		}
		h.Colour, h.Reason = judge(h, start)
		o.Connections = append(o.Connections, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return o, fmt.Errorf("overview connections: %w", err)
	}
	for _, c := range companies {
		o.Companies = append(o.Companies, *c)
	}
	sort.Slice(o.Companies, func(i, j int) bool {
		a, b := o.Companies[i], o.Companies[j]
		return a.Connection < b.Connection || a.Connection == b.Connection && a.Company < b.Company
	})
	o.Took = time.Since(start).Round(time.Millisecond).String()
	return o, nil
}

// staleAfter is how long without a sign of life makes a connection amber.
const staleAfter = 24 * time.Hour

// judge colours a connection from what the database knows of it.
func judge(h ConnHealth, now time.Time) (string, string) {
	switch h.Kind {
	case "gocardless":
		if h.LastCatchUp == nil && h.LastWebhook == nil {
			return "red", "no GoCardless event has ever been received or caught up"
		}
		if h.LastCatchUp == nil {
			return "amber", "events arrive by webhook, but the /events catch-up has not run for this account"
		}
		if now.Sub(*h.LastCatchUp) > staleAfter {
			return "amber", "the /events catch-up has not moved for " + now.Sub(*h.LastCatchUp).Round(time.Minute).String()
		}
	default:
		if h.LastPoll == nil {
			return "red", "the poller has never read a record from this connection"
		}
		if now.Sub(*h.LastPoll) > staleAfter {
			return "amber", "no new records read for " + now.Sub(*h.LastPoll).Round(time.Minute).String() + " (quiet, or the poller is stuck)"
		}
	}
	if h.OpenExceptions > 0 {
		return "amber", fmt.Sprintf("%d open exceptions need someone", h.OpenExceptions)
	}
	return "green", "working: recent activity and nothing waiting for anyone"
}

// Refresher keeps a recent Overview.
type Refresher struct {
	v     *Views
	every time.Duration
	mu    sync.RWMutex
	last  Overview
	err   error
}

// NewRefresher computes the overview every interval once Run runs.
func NewRefresher(v *Views, every time.Duration) *Refresher { return &Refresher{v: v, every: every} }

// Latest returns the newest overview, computing one if there is none yet.
func (r *Refresher) Latest(ctx context.Context) (Overview, error) {
	r.mu.RLock()
	o, err := r.last, r.err
	r.mu.RUnlock()
	if o.TakenAt.IsZero() && err == nil {
		return r.Refresh(ctx)
	}
	return o, err
}

// Refresh computes the overview now.
func (r *Refresher) Refresh(ctx context.Context) (Overview, error) {
	o, err := r.v.ComputeOverview(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.err = err
		return r.last, err
	}
	r.last, r.err = o, nil
	return o, nil
}

// Run refreshes until ctx ends.
func (r *Refresher) Run(ctx context.Context) error {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		_, _ = r.Refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
