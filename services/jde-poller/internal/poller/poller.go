// Package poller reads one JD Edwards connection through the AIS data
// service and publishes what changed: customers (F03012 with F0101 name,
// F01151 e-mail, F0116 address and F0030 bank details) as CustomerChanged,
// open AR pay items (F03B11) as InvoiceReady and refund documents as
// RefundRequested, on mlc.erp.jde.<company>.<kind>.
//
// Each table is read by date updated (UPMJ/UPMT) from a watermark of date,
// time and key kept in poll_state, which moves only after JetStream has
// acknowledged every message up to it. A crash between publish and
// watermark therefore re-publishes, and the message ids
// (jde:<connection>:<company>:<kind>:<key>:<version>) make JetStream drop the repeats.
//
// UPMT has a resolution of one second and is written before the commit,
// so a row can appear after the watermark passed its stamp (written later
// in the watermark's own second with a lower key, or committed late). Each
// read therefore starts Overlap before the watermark, and a re-read row is
// published again only when its version is not the one recorded in
// poll_seen (platform/watermark). JD Edwards writes a row twice in one
// second readily, so a version is a stamp and a digest of the columns read
// (versionOf): a row's own, and for a customer's message the newest stamp
// of the customer's rows and a digest of them all.
package poller

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/watermark"
)

// Source is the part of the AIS client the poller reads through.
type Source interface {
	Browse(ctx context.Context, q jde.Query, fn func([]jde.Row) error) error
	DateFormat(ctx context.Context) (jde.DateFormat, error)
}

// Publisher stores messages and reports JetStream's acknowledgements.
type Publisher interface {
	PublishBatch(ctx context.Context, msgs []bus.Msg) ([]bus.Ack, error)
}

// Config is what a Poller needs for one connection.
type Config struct {
	ConnectionID   int64
	ConnectionName string
	Settings       jde.Settings
	Source         Source
	Publisher      Publisher
	DB             *pgxpool.Pool
	// BatchSize is how many messages are published (and acknowledged)
	// before the watermark moves (default 500).
	BatchSize int
	// SnapshotThreshold: when more customers than this changed, their
	// e-mail, address and bank rows are read table by table instead of
	// customer by customer (default 50).
	SnapshotThreshold int
	// Reruns is how often a read whose result set AIS lost (restart,
	// timeout) is started again within one cycle (default 3).
	Reruns int
	// Overlap is how far before its watermark each table is read again,
	// for rows that appear late with an earlier stamp (default
	// DefaultOverlap, at most watermark.MaxOverlap).
	Overlap time.Duration
	Now     func() time.Time
	Log     *slog.Logger
	Metrics *Metrics
}

// Poller polls one JDE connection. A Poller is used by one goroutine.
type Poller struct {
	cfg    Config
	marks  *watermark.Store
	format jde.DateFormat
}

// companyToken is what a company code must look like to be a subject token.
var companyToken = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// New checks cfg and returns a poller.
func New(cfg Config) (*Poller, error) {
	for _, co := range cfg.Settings.Companies {
		if !companyToken.MatchString(co) {
			return nil, fmt.Errorf("connection %s: company code %q cannot be a NATS subject token", cfg.ConnectionName, co)
		}
	}
	if cfg.Source == nil || cfg.Publisher == nil || cfg.DB == nil {
		return nil, errors.New("poller: source, publisher and database are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.SnapshotThreshold <= 0 {
		cfg.SnapshotThreshold = 50
	}
	if cfg.Reruns <= 0 {
		cfg.Reruns = 3
	}
	if cfg.Overlap == 0 {
		cfg.Overlap = DefaultOverlap
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Settings.Location == nil {
		cfg.Settings.Location = time.UTC
	}
	marks, err := watermark.New(cfg.DB, cfg.Overlap)
	if err != nil {
		return nil, fmt.Errorf("connection %s: %w", cfg.ConnectionName, err)
	}
	return &Poller{cfg: cfg, marks: marks}, nil
}

// DefaultOverlap is the default read-again window: JD Edwards stamps with
// the enterprise server's clock before the commit, so a minute covers a
// late commit and servers whose clocks differ by seconds, at the cost of
// comparing the rows changed in the minute before the watermark.
const DefaultOverlap = time.Minute

// Result counts what a cycle did.
type Result struct {
	Customers int // CustomerChanged published (including JetStream duplicates)
	Invoices  int // InvoiceReady published
	Refunds   int // RefundRequested published
	Rejected  int // rows recorded as exceptions instead
}

// Cycle reads everything that changed since the watermarks and publishes
// it: customers first, so that a consumer sees a customer before its
// invoices more often than not (it must cope with either order).
func (p *Poller) Cycle(ctx context.Context) (Result, error) {
	began := p.cfg.Now()
	var res Result
	err := p.cycle(ctx, &res)
	p.cfg.Metrics.cycle(ctx, p.cfg.ConnectionName, began, p.cfg.Now(), err)
	return res, err
}

func (p *Poller) cycle(ctx context.Context, res *Result) error {
	var err error
	// Formatted dates are in the format of the session's user.
	if p.format, err = p.cfg.Source.DateFormat(ctx); err != nil {
		return err
	}
	if err := p.customers(ctx, res); err != nil {
		return err
	}
	for _, co := range p.cfg.Settings.Companies {
		if err := p.documents(ctx, co, res); err != nil {
			return err
		}
	}
	return nil
}

// orderKey joins key parts into a watermark key, numbers zero-padded so
// that keys sort the way JDE numbers them (document 200 before 1000).
func orderKey(parts ...string) string {
	out := make([]string, len(parts))
	for i, p := range parts {
		if p != "" && strings.Trim(p, "0123456789") == "" {
			p = fmt.Sprintf("%012s", p)
		}
		out[i] = p
	}
	return strings.Join(out, "/")
}

// stamp is a row's UPMJ/UPMT, read as JDE stores it.
type stamp struct {
	date jde.Date
	time int
}

// version is the stamp as versions begin with it: CYYDDDHHMMSS.
func (s stamp) version() string { return fmt.Sprintf("%06d%06d", s.date.Julian(), s.time) }

// columns is what a version digests of a row: the text of each column of
// cols, each ended by a NUL.
func columns(r jde.Row, table string, cols []string) []byte {
	var b []byte
	for _, col := range cols {
		b = append(b, r.Text(table, col)...)
		b = append(b, 0)
	}
	return b
}

// versionOf is the version, in message ids and in poll_seen, of what was
// read as of stamp s: the stamp and a 64-bit FNV digest of read (the
// columns of the rows read), CYYDDDHHMMSS-<16 hex digits>. The stamp
// alone is not enough: UPMT is a six-digit time of day, HHMMSS (Oracle,
// "System-Supplied Field Values in the F0015Z1 Workfile",
// https://docs.oracle.com/en/applications/jd-edwards/financials/9.2/eoamp/system-supplied-field-values-in-the-f0015z1-workfile.html),
// and JDE writes a row twice in one second readily. A poll between the
// two writes gave the second state the version of the first, so poll_seen
// (and JetStream's de-duplication of the message id) dropped it for good
// (#17). With the digest such a change is lost only if the digests
// collide. Versions of one second differ by the digest, not in order.
func versionOf(s stamp, read []byte) string {
	h := fnv.New64a()
	h.Write(read)
	return fmt.Sprintf("%s-%016x", s.version(), h.Sum64())
}

func (p *Poller) readStamp(r jde.Row, table string) (stamp, error) {
	d, err := jde.ParseDate(r.Text(table, "UPMJ"), p.format)
	if err != nil {
		return stamp{}, fmt.Errorf("%s.UPMJ: %w", table, err)
	}
	t, err := jde.ParseTimeOfDay(r.Text(table, "UPMT"))
	if err != nil {
		return stamp{}, fmt.Errorf("%s.UPMT: %w", table, err)
	}
	return stamp{date: d, time: t}, nil
}

func (p *Poller) at(s stamp) time.Time {
	if s.date.IsZero() {
		return time.Time{}
	}
	return s.date.Time(s.time, p.cfg.Settings.Location)
}

// since returns the queries that together read the rows of q updated at
// or after from: those of from's day from its time on, and those of later
// days. The conditions of one AIS query are all ANDed, so "(UPMJ, UPMT) >="
// takes two; reading from the day's start instead would read every row
// changed that day again on every cycle.
func (p *Poller) since(q jde.Query, from time.Time) []jde.Query {
	local := from.In(p.cfg.Settings.Location)
	day := fmt.Sprint(jde.DateOf(local).Julian())
	hhmmss := fmt.Sprint(local.Hour()*10000 + local.Minute()*100 + local.Second())
	sameDay, later := q, q
	sameDay.Conditions = append(slices.Clone(q.Conditions),
		jde.Condition{Column: "UPMJ", Op: jde.Equal, Value: day}, jde.Condition{Column: "UPMT", Op: jde.GreaterEqual, Value: hhmmss})
	later.Conditions = append(slices.Clone(q.Conditions), jde.Condition{Column: "UPMJ", Op: jde.Greater, Value: day})
	return []jde.Query{sameDay, later}
}

// read runs q to the end, handing every row to fn. When AIS loses the
// result set midway (restart, session or result-set expiry) the client has
// already logged in again; reset discards what the aborted read collected
// and the query runs again from the start, up to Reruns times.
func (p *Poller) read(ctx context.Context, q jde.Query, reset func(), fn func(jde.Row) error) error {
	for attempt := 0; ; attempt++ {
		err := p.cfg.Source.Browse(ctx, q, func(rows []jde.Row) error {
			for _, r := range rows {
				if err := fn(r); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil || !errors.Is(err, jde.ErrResultSetLost) || attempt >= p.cfg.Reruns {
			return err
		}
		p.cfg.Log.WarnContext(ctx, "jde result set lost, reading again", "connection", p.cfg.ConnectionName, "table", q.Table, "error", err)
		reset()
	}
}
