package settlement

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/platform/money"
)

// MaxReportDays bounds a report's period: a year and a month covers any
// month end and a year end with its stragglers.
const MaxReportDays = 400

// ReportQuery is the period and scope of a month-end report.
type ReportQuery struct {
	// From and To are the first and last day of the period (inclusive),
	// compared with payouts' arrival dates: the day the money reached the
	// bank account, the date on the bank statement.
	From, To time.Time
	// Connection limits the report to an ERP connection, or to a
	// GoCardless connection's payouts; "" reports on all.
	Connection string
}

// Line is one connection, company and currency of a report. Collected,
// fees, refunds, charge-backs and other adjustments are what GoCardless's
// payout items say about the payouts that arrived in the period;
// deductions are written as positive amounts, so that
//
//	paid_out = collected - fees - refunds - charge_backs - other
//
// holds on every line. In flight is the money GoCardless is collecting or
// holding at the end of the period: payments submitted by then (less
// refunds submitted by then) that no payout arriving by then contained.
// The instalments of subscriptions are not counted in flight: the ledger
// keeps a subscription, not each of its payments (they are counted once
// paid out, matched to the subscription's invoice).
type Line struct {
	// Kind says what the line is (see the Line* constants): invoices of
	// ours, items that are not ours, or a payout's rounding or its
	// unexplained difference.
	Kind string `json:"kind"`
	// Connection is the ERP connection of the invoices; for the other
	// kinds it is the GoCardless connection, with Company "".
	Connection   string `json:"connection"`
	Company      string `json:"company"`
	GCConnection string `json:"gc_connection"`
	Currency     string `json:"currency"`
	Collected    string `json:"collected"`
	Fees         string `json:"fees"`
	Refunds      string `json:"refunds"`
	ChargeBacks  string `json:"charge_backs"`
	Other        string `json:"other"`
	PaidOut      string `json:"paid_out"`
	InFlight     string `json:"in_flight"`
	Payouts      int    `json:"payouts"`

	sums sums
}

// The kinds of line. The lines of every kind together add up, per
// currency, to what GoCardless paid and deducted for the payouts of the
// period: each payout's amount is the sum of its items rounded to the
// minor unit, and its deducted fees the sum of its fee items rounded
// likewise (gocardless-pro-java PayoutItem.java), so the rounding has a
// line of its own; a payout whose items are further from its amount than
// rounding explains (a mismatch, an exception of its own) has its
// difference on an "unexplained" line, named in Report.Unbalanced.
const (
	LineInvoices    = "invoices"
	LineNotOurs     = "not_ours"
	LineRounding    = "rounding"
	LineUnexplained = "unexplained"
)

// lineFunc returns the line of a kind, connection, company and currency,
// creating it.
type lineFunc func(kind, conn, company, gcConn, currency string) *Line

// sums are a line's figures in tenths of minor units (see tenths).
type sums struct {
	collected, fees, refunds, chargeBacks, other, paidOut, inFlight int64
}

// Report is a month-end report.
type Report struct {
	From       string `json:"from"`
	To         string `json:"to"`
	Connection string `json:"connection,omitempty"`
	Lines      []Line `json:"lines"`
	// Totals are per currency, over every line (kind "total"): the paid
	// out and fees of the payouts of the period are GoCardless's own.
	Totals []Line `json:"totals"`
	// Unbalanced names each payout of the period whose items do not add up
	// to the amount GoCardless paid (also an exception on the payout):
	// the report shows what the items say, and this says where the bank
	// line differs.
	Unbalanced []string `json:"unbalanced"`
}

// dateOnly is the day of t, as a date.
func dateOnly(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Check validates q: both dates given, in order, at most MaxReportDays
// apart, and a connection name of sane length.
func (q ReportQuery) Check() error {
	if q.From.IsZero() || q.To.IsZero() {
		return fmt.Errorf("%w: give the first and the last day of the period", ErrInput)
	}
	from, to := dateOnly(q.From), dateOnly(q.To)
	if to.Before(from) {
		return fmt.Errorf("%w: the period ends (%s) before it starts (%s)", ErrInput, to.Format(time.DateOnly), from.Format(time.DateOnly))
	}
	if days := int(to.Sub(from).Hours()/24) + 1; days > MaxReportDays {
		return fmt.Errorf("%w: %d days is longer than the %d a report covers", ErrInput, days, MaxReportDays)
	}
	if len(q.Connection) > 200 {
		return fmt.Errorf("%w: connection name longer than 200 characters", ErrInput)
	}
	return nil
}

// lineKey identifies a line.
type lineKey struct{ kind, connection, company, currency string }

// MonthEnd reports on the period of q.
func (r *Reader) MonthEnd(ctx context.Context, q ReportQuery) (Report, error) {
	if err := q.Check(); err != nil {
		return Report{}, err
	}
	from, to := dateOnly(q.From), dateOnly(q.To)
	if q.Connection != "" {
		var n int
		if err := r.db.QueryRow(ctx, `SELECT count(*) FROM connections WHERE name = $1`, q.Connection).Scan(&n); err != nil {
			return Report{}, fmt.Errorf("month-end report: %w", err)
		}
		if n == 0 {
			return Report{}, fmt.Errorf("connection %q: %w", q.Connection, ErrNotFound)
		}
	}
	lines := map[lineKey]*Line{}
	line := func(kind, conn, company, gcConn, currency string) *Line {
		k := lineKey{kind, conn, company, currency}
		l, ok := lines[k]
		if !ok {
			l = &Line{Kind: kind, Connection: conn, Company: company, GCConnection: gcConn, Currency: currency}
			lines[k] = l
		}
		if l.GCConnection == "" {
			l.GCConnection = gcConn
		}
		return l
	}
	if err := r.paidOut(ctx, from, to, q.Connection, line); err != nil {
		return Report{}, err
	}
	if err := r.rounding(ctx, from, to, q.Connection, line); err != nil {
		return Report{}, err
	}
	if err := r.inFlight(ctx, to, q.Connection, line); err != nil {
		return Report{}, err
	}
	rep := Report{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), Connection: q.Connection,
		Lines: []Line{}, Totals: []Line{}}
	var err error
	if rep.Unbalanced, err = r.unbalanced(ctx, from, to, q.Connection); err != nil {
		return Report{}, err
	}
	totals := map[string]*Line{}
	for _, l := range lines {
		t, ok := totals[l.Currency]
		if !ok {
			t = &Line{Kind: "total", Currency: l.Currency}
			totals[l.Currency] = t
		}
		if err := t.sums.add(l.sums); err != nil {
			return Report{}, fmt.Errorf("month-end report, %s: %w", l.Currency, err)
		}
		rep.Lines = append(rep.Lines, l.format())
	}
	counts, err := r.payoutCounts(ctx, from, to, q.Connection)
	if err != nil {
		return Report{}, err
	}
	for _, t := range totals {
		t.Payouts = counts[t.Currency]
		rep.Totals = append(rep.Totals, t.format())
	}
	sort.Slice(rep.Lines, func(i, j int) bool {
		a, b := rep.Lines[i], rep.Lines[j]
		if a.Kind != b.Kind {
			return kindOrder[a.Kind] < kindOrder[b.Kind]
		}
		if a.Connection != b.Connection {
			return a.Connection < b.Connection
		}
		if a.Company != b.Company {
			return a.Company < b.Company
		}
		return a.Currency < b.Currency
	})
	sort.Slice(rep.Totals, func(i, j int) bool { return rep.Totals[i].Currency < rep.Totals[j].Currency })
	return rep, nil
}

// Payout item types by the report column they count in
// (connectors/gocardless documents each type and its sign).
var (
	feeTypes        = []string{"gocardless_fee", "app_fee", "surcharge_fee", "revenue_share"}
	refundTypes     = []string{"payment_refunded", "refund", "refund_funds_returned"}
	chargeBackTypes = []string{"payment_charged_back", "payment_failed"}
)

// paidOut adds the items of the payouts that arrived in the period, per
// ERP connection and company of the invoice each is for (unmatched items
// under the GoCardless connection), and counts the payouts per line.
func (r *Reader) paidOut(ctx context.Context, from, to time.Time, conn string, line lineFunc) error {
	rows, err := r.db.Query(ctx, `
		SELECT CASE WHEN i.match = 'matched' THEN 'invoices' ELSE 'not_ours' END,
		       coalesce(e.name, g.name), coalesce(i.company, ''), g.name, p.currency,
		       coalesce(sum(i.amount_tenths) FILTER (WHERE i.type = 'payment_paid_out'), 0)::bigint,
		       coalesce(sum(i.amount_tenths) FILTER (WHERE i.type = ANY($4)), 0)::bigint,
		       coalesce(sum(i.amount_tenths) FILTER (WHERE i.type = ANY($5)), 0)::bigint,
		       coalesce(sum(i.amount_tenths) FILTER (WHERE i.type = ANY($6)), 0)::bigint,
		       sum(i.amount_tenths)::bigint,
		       count(DISTINCT p.id)
		FROM payouts p
		JOIN connections g ON g.id = p.gc_connection_id
		JOIN payout_items i ON i.payout_id = p.id
		LEFT JOIN connections e ON e.id = i.erp_connection_id
		WHERE p.arrival_date BETWEEN $1 AND $2
		  AND ($3 = '' OR g.name = $3 OR e.name = $3)
		GROUP BY 1, 2, 3, 4, 5`, from, to, conn, feeTypes, refundTypes, chargeBackTypes)
	if err != nil {
		return fmt.Errorf("month-end report, payouts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, lineConn, company, gcConn, currency string
		var collected, fees, refunds, chargeBacks, total int64
		var payouts int
		if err := rows.Scan(&kind, &lineConn, &company, &gcConn, &currency, &collected, &fees, &refunds, &chargeBacks, &total, &payouts); err != nil {
			return fmt.Errorf("month-end report, payouts: %w", err)
		}
		l := line(kind, lineConn, company, gcConn, currency)
		l.Payouts += payouts
		// Deductions are debits (negative items): shown as positive
		// amounts; whatever no column names is "other", so that every
		// line adds up to what it paid out.
		other := total - collected - fees - refunds - chargeBacks
		for _, f := range []struct {
			dst *int64
			v   int64
		}{{&l.sums.collected, collected}, {&l.sums.fees, -fees}, {&l.sums.refunds, -refunds},
			{&l.sums.chargeBacks, -chargeBacks}, {&l.sums.other, -other}, {&l.sums.paidOut, total}} {
			if err := addTo(f.dst, f.v); err != nil {
				return fmt.Errorf("month-end report, payouts: %w", err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("month-end report, payouts: %w", err)
	}
	return nil
}

// payoutCounts counts the payouts of the period per currency (a payout
// with invoices of several companies counts once in the totals).
func (r *Reader) payoutCounts(ctx context.Context, from, to time.Time, conn string) (map[string]int, error) {
	rows, err := r.db.Query(ctx, `
		SELECT p.currency, count(*)
		FROM payouts p JOIN connections g ON g.id = p.gc_connection_id
		WHERE p.arrival_date BETWEEN $1 AND $2
		  AND ($3 = '' OR g.name = $3 OR EXISTS (
		        SELECT 1 FROM payout_items i JOIN connections e ON e.id = i.erp_connection_id
		        WHERE i.payout_id = p.id AND e.name = $3))
		GROUP BY 1`, from, to, conn)
	if err != nil {
		return nil, fmt.Errorf("month-end report, payouts: %w", err)
	}
	out := map[string]int{}
	for rows.Next() {
		var currency string
		var n int
		if err := rows.Scan(&currency, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("month-end report, payouts: %w", err)
		}
		out[currency] = n
	}
	rows.Close()
	return out, rows.Err()
}

// roundingTenths is how far a payout's items may be from its amount by
// GoCardless's rounding alone: half a minor unit either way.
const roundingTenths = 5

// rounding adds, per GoCardless connection and currency, what the payouts
// of the period paid and deducted beyond what their items add up to: the
// rounding to the minor unit, or, for a payout that does not add up, its
// unexplained difference. Payouts are the GoCardless connection's: a
// report on one ERP connection has none of this.
func (r *Reader) rounding(ctx context.Context, from, to time.Time, conn string, line lineFunc) error {
	rows, err := r.db.Query(ctx, `
		SELECT g.name, p.currency, p.amount_minor, p.deducted_fees_minor,
		       coalesce(sum(i.amount_tenths), 0)::bigint,
		       coalesce(sum(i.amount_tenths) FILTER (WHERE i.type = ANY($4)), 0)::bigint
		FROM payouts p
		JOIN connections g ON g.id = p.gc_connection_id
		LEFT JOIN payout_items i ON i.payout_id = p.id
		WHERE p.arrival_date BETWEEN $1 AND $2 AND ($3 = '' OR g.name = $3)
		GROUP BY p.id, g.name`, from, to, conn, feeTypes)
	if err != nil {
		return fmt.Errorf("month-end report, rounding: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var gcConn, currency string
		var amount, deducted, items, feeItems int64
		if err := rows.Scan(&gcConn, &currency, &amount, &deducted, &items, &feeItems); err != nil {
			return fmt.Errorf("month-end report, rounding: %w", err)
		}
		paid, err := tenths(amount)
		if err != nil {
			return fmt.Errorf("month-end report, rounding: %w", err)
		}
		fees, err := tenths(deducted)
		if err != nil {
			return fmt.Errorf("month-end report, rounding: %w", err)
		}
		// Fee items are debits (negative); fees are shown positive.
		paidDiff, feeDiff := paid-items, fees+feeItems
		if paidDiff == 0 && feeDiff == 0 {
			continue
		}
		kind := LineRounding
		if paidDiff > roundingTenths || paidDiff < -roundingTenths {
			kind = LineUnexplained
		}
		l := line(kind, gcConn, "", gcConn, currency)
		for _, f := range []struct {
			dst *int64
			v   int64
		}{{&l.sums.paidOut, paidDiff}, {&l.sums.fees, feeDiff}, {&l.sums.other, -paidDiff - feeDiff}} {
			if err := addTo(f.dst, f.v); err != nil {
				return fmt.Errorf("month-end report, rounding: %w", err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("month-end report, rounding: %w", err)
	}
	return nil
}

// payoutLagDays is how long after a payment is paid out its payout
// reaches the bank at the latest: GoCardless pays out every working day
// and the money arrives the next (gcsim does the same); a week covers
// bank holidays.
const payoutLagDays = 7

// kindOrder sorts lines: invoices first, then what is not ours, then
// the payouts' rounding and unexplained differences.
var kindOrder = map[string]int{LineInvoices: 0, LineNotOurs: 1, LineRounding: 2, LineUnexplained: 3}

// unbalanced describes each payout of the period whose items do not add
// up to what GoCardless paid, beyond rounding.
func (r *Reader) unbalanced(ctx context.Context, from, to time.Time, conn string) ([]string, error) {
	rows, err := r.db.Query(ctx, `
		SELECT p.gc_payout_id, p.reference, p.currency, p.amount_minor, p.items_total_tenths
		FROM payouts p JOIN connections g ON g.id = p.gc_connection_id
		WHERE p.arrival_date BETWEEN $1 AND $2 AND abs(p.difference_tenths) > $5
		  AND ($3 = '' OR g.name = $3 OR EXISTS (
		        SELECT 1 FROM payout_items i JOIN connections e ON e.id = i.erp_connection_id
		        WHERE i.payout_id = p.id AND e.name = $3))
		ORDER BY p.arrival_date, p.gc_payout_id
		LIMIT $4`, from, to, conn, MaxPayouts, roundingTenths)
	if err != nil {
		return nil, fmt.Errorf("month-end report, unbalanced payouts: %w", err)
	}
	out := []string{}
	for rows.Next() {
		var id, ref, currency string
		var amount, items int64
		if err := rows.Scan(&id, &ref, &currency, &amount, &items); err != nil {
			rows.Close()
			return nil, fmt.Errorf("month-end report, unbalanced payouts: %w", err)
		}
		out = append(out, fmt.Sprintf("payout %s (bank reference %s): GoCardless paid %s %s, its items add up to %s",
			id, ref, currency, Decimal(amount, currency), decimalTenths(items, currency)))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("month-end report, unbalanced payouts: %w", err)
	}
	return out, nil
}

// inFlight adds, per ERP connection, company and currency, the money on
// its way at the end of day to: payments submitted by then (charge date)
// that no payout arriving by then contained, less the refunds created by
// then that no such payout deducted. A refund is dated by the first
// of its row and its GoCardless events. Failed, cancelled and charged-back
// payments are not on their way. A payment GoCardless paid out in a
// payout not stored yet (it is stored when paid, a working day or two
// later) is on its way; one paid out more than payoutLagDays before the
// day in no stored payout at all was paid out before ml-connector kept
// payouts, and is not.
func (r *Reader) inFlight(ctx context.Context, to time.Time, conn string, line lineFunc) error {
	rows, err := r.db.Query(ctx, `
		WITH flight AS (
			SELECT c.connection_id, c.gc_connection_id, c.company, c.currency, c.amount_minor AS minor
			FROM collections c
			WHERE c.gc_payment_id IS NOT NULL
			  AND c.state IN ('pending_submission', 'submitted', 'confirmed', 'paid_out')
			  AND coalesce(c.charge_date, least(c.created_at, c.last_event_at)::date) <= $1
			  AND NOT EXISTS (SELECT 1 FROM payout_items i JOIN payouts p ON p.id = i.payout_id
			                  WHERE i.gc_payment_id = c.gc_payment_id AND i.type = 'payment_paid_out' AND p.arrival_date <= $1)
			  AND (c.state <> 'paid_out'
			       OR EXISTS (SELECT 1 FROM payout_items i JOIN payouts p ON p.id = i.payout_id
			                  WHERE i.gc_payment_id = c.gc_payment_id AND i.type = 'payment_paid_out' AND p.arrival_date > $1)
			       OR (c.last_event_at >= $1::date - $3::int
			           AND NOT EXISTS (SELECT 1 FROM payout_items i
			                           WHERE i.gc_payment_id = c.gc_payment_id AND i.type = 'payment_paid_out')))
			UNION ALL
			SELECT f.connection_id, c.gc_connection_id, f.company, f.currency, -f.amount_minor
			FROM refunds f JOIN collections c ON c.id = f.collection_id
			WHERE f.gc_refund_id IS NOT NULL
			  AND f.state IN ('created', 'pending_submission', 'submitted', 'paid')
			  AND least(f.created_at, f.last_event_at)::date <= $1
			  AND NOT EXISTS (SELECT 1 FROM payout_items i JOIN payouts p ON p.id = i.payout_id
			                  WHERE i.gc_refund_id = f.gc_refund_id AND p.arrival_date <= $1)
			  AND (f.state <> 'paid'
			       OR EXISTS (SELECT 1 FROM payout_items i JOIN payouts p ON p.id = i.payout_id
			                  WHERE i.gc_refund_id = f.gc_refund_id AND p.arrival_date > $1)
			       OR (f.last_event_at >= $1::date - $3::int
			           AND NOT EXISTS (SELECT 1 FROM payout_items i WHERE i.gc_refund_id = f.gc_refund_id)))
		)
		SELECT e.name, f.company, coalesce(g.name, ''), f.currency, sum(f.minor)::bigint
		FROM flight f
		JOIN connections e ON e.id = f.connection_id
		LEFT JOIN connections g ON g.id = f.gc_connection_id
		WHERE $2 = '' OR e.name = $2 OR g.name = $2
		GROUP BY 1, 2, 3, 4`, to, conn, payoutLagDays)
	if err != nil {
		return fmt.Errorf("month-end report, in flight: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var erpConn, company, gcConn, currency string
		var minor int64
		if err := rows.Scan(&erpConn, &company, &gcConn, &currency, &minor); err != nil {
			return fmt.Errorf("month-end report, in flight: %w", err)
		}
		t, err := tenths(minor)
		if err != nil {
			return fmt.Errorf("month-end report, in flight: %w", err)
		}
		line(LineInvoices, erpConn, company, gcConn, currency).sums.inFlight += t
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("month-end report, in flight: %w", err)
	}
	return nil
}

// tenths converts minor units to tenths of minor units.
func tenths(minor int64) (int64, error) {
	if minor > math.MaxInt64/10 || minor < math.MinInt64/10 {
		return 0, errOverflow
	}
	return minor * 10, nil
}

var errOverflow = fmt.Errorf("%w: a sum does not fit in 64-bit tenths of minor units", ErrInput)

func addTo(dst *int64, v int64) error {
	if (v > 0 && *dst > math.MaxInt64-v) || (v < 0 && *dst < math.MinInt64-v) {
		return errOverflow
	}
	*dst += v
	return nil
}

func (s *sums) add(o sums) error {
	for _, p := range [][2]*int64{{&s.collected, &o.collected}, {&s.fees, &o.fees}, {&s.refunds, &o.refunds},
		{&s.chargeBacks, &o.chargeBacks}, {&s.other, &o.other}, {&s.paidOut, &o.paidOut}, {&s.inFlight, &o.inFlight}} {
		if err := addTo(p[0], *p[1]); err != nil {
			return err
		}
	}
	return nil
}

// format writes the line's sums out as decimals.
func (l *Line) format() Line {
	out := *l
	s := l.sums
	out.Collected, out.Fees, out.Refunds = decimalTenths(s.collected, l.Currency), decimalTenths(s.fees, l.Currency), decimalTenths(s.refunds, l.Currency)
	out.ChargeBacks, out.Other = decimalTenths(s.chargeBacks, l.Currency), decimalTenths(s.other, l.Currency)
	out.PaidOut, out.InFlight = decimalTenths(s.paidOut, l.Currency), decimalTenths(s.inFlight, l.Currency)
	return out
}

// decimalTenths writes tenths of minor units as an exact decimal: with the
// currency's decimals when it is a whole number of minor units (always, for
// what reaches a bank account), else with one more digit, as GoCardless
// states some fees (a fee of 0.5 pence is GBP 0.005), never rounded.
func decimalTenths(t int64, currency string) string {
	if t%10 == 0 {
		return Decimal(t/10, currency)
	}
	if _, err := money.Exponent(currency); err != nil || t == math.MinInt64 {
		return strconv.FormatInt(t, 10) + " (tenths of minor units)"
	}
	sign := ""
	if t < 0 {
		sign, t = "-", -t
	}
	d := Decimal(t/10, currency)
	if !strings.Contains(d, ".") {
		d += "." // a currency without minor units
	}
	return sign + d + strconv.FormatInt(t%10, 10)
}

// CSVHeader is the first row of a report's CSV.
var CSVHeader = []string{"kind", "connection", "company", "gc_connection", "currency", "collected", "fees", "refunds",
	"charge_backs", "other", "paid_out", "in_flight", "payouts"}

// WriteCSV writes the report's lines, then one total line per currency
// (kind "total"), under the same names as its JSON.
func (rep Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	row := func(l Line) error {
		return cw.Write([]string{l.Kind, cell(l.Connection), cell(l.Company), cell(l.GCConnection), l.Currency, l.Collected, l.Fees, l.Refunds,
			l.ChargeBacks, l.Other, l.PaidOut, l.InFlight, fmt.Sprint(l.Payouts)})
	}
	for _, l := range rep.Lines {
		if err := row(l); err != nil {
			return err
		}
	}
	for _, t := range rep.Totals {
		if err := row(t); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// cell keeps a name a spreadsheet would take for a formula (=, +, -, @,
// tab or carriage return first) as text, with a leading apostrophe:
// connection names and company codes come from people and ERPs. Amounts
// are written as they are: a negative amount is a number.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
