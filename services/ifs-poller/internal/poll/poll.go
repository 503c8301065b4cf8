// Package poll runs one poll cycle of one IFS Cloud connection: for each of
// its companies it reads the customers and the invoices ready for
// collection that changed after the stored watermark, publishes them as
// CustomerChanged and InvoiceReady on mlc.erp.ifs.<company>.<kind>, and
// moves the watermark (poll_state) only after JetStream acknowledged every
// message of the page.
//
// A crash between publish and watermark re-publishes the page on the next
// cycle; the message ids ifs:<connection>:<company>:<kind>:<key>:<version>, with the
// entity's ETag as version, make JetStream drop the repeats. Rows that
// cannot become an event are recorded as exceptions, in the same
// transaction as the watermark that moves past them.
//
// The modified time is stamped before the commit, so a row can appear
// after the watermark passed its time (committed late, or stamped in the
// watermark's own instant with a lower key). Each read therefore starts
// Overlap before the watermark, and a re-read row is published again only
// when its ETag is not the one recorded in poll_seen (platform/watermark).
package poll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/watermark"
)

// Event kinds: the last token of the subject and part of the message id.
const (
	KindCustomer = "customer"
	KindInvoice  = "invoice"
)

// Source reads changed records; *ifscloud.Client is one.
type Source interface {
	Customers(ctx context.Context, company string, after ifscloud.Watermark, fn func(ifscloud.CustomerPage) error) error
	Invoices(ctx context.Context, company string, after ifscloud.Watermark, fn func(ifscloud.InvoicePage) error) error
	// The changes of a customer's own entities (address, contact methods,
	// payment address, company data), and the customers they belong to.
	PartChanges(ctx context.Context, company, part string, from time.Time, fn func([]ifscloud.PartRow) error) error
	LatestPartChange(ctx context.Context, company, part string) (time.Time, error)
	CustomersByID(ctx context.Context, company string, ids []string) (ifscloud.CustomerPage, error)
}

// Publisher stores messages and reports JetStream's acknowledgements;
// *bus.Bus is one.
type Publisher interface {
	PublishBatch(ctx context.Context, msgs []bus.Msg) ([]bus.Ack, error)
}

// Watermarks keeps each entity's watermark with the rows handled within
// its overlap window, and records the rows passed over as invalid,
// atomically.
type Watermarks interface {
	Load(ctx context.Context, connectionID int64, entity string) (watermark.State, error)
	Save(ctx context.Context, connectionID int64, entity string, wm ifscloud.Watermark, invalid []Rejected, handled []watermark.Row) error
}

// Poller polls one connection.
type Poller struct {
	ConnectionID int64
	Connection   string
	Companies    []string
	Source       Source
	Publisher    Publisher
	Watermarks   Watermarks
	Metrics      *Metrics
	Log          *slog.Logger
	// BatchSize bounds how many messages are in flight to JetStream at once
	// (default 1000).
	BatchSize int
}

// Stats counts what a cycle did.
type Stats struct {
	Published  int // messages JetStream stored
	Duplicates int // messages JetStream had already (a re-read after a crash)
	Rejected   int // rows recorded as exceptions
	Pages      int
}

// Cycle polls every company once: customers first (their own changes,
// then those of their addresses, contact methods, payment addresses and
// company data), so that a consumer reading in order tends to meet a
// customer before its invoices (it must not rely on it). A failure in one
// company does not stop the others.
func (p *Poller) Cycle(ctx context.Context) (Stats, error) {
	var st Stats
	var errs []error
	for _, company := range p.Companies {
		steps := []struct {
			what string
			run  func() error
		}{
			{"customers", func() error { return p.poll(ctx, company, KindCustomer, &st) }},
			{"customer parts", func() error { return p.pollParts(ctx, company, &st) }},
			{"invoices", func() error { return p.poll(ctx, company, KindInvoice, &st) }},
		}
		for _, step := range steps {
			if err := step.run(); err != nil {
				errs = append(errs, fmt.Errorf("company %s %s: %w", company, step.what, err))
				if ctx.Err() != nil {
					return st, errors.Join(errs...)
				}
			}
		}
	}
	return st, errors.Join(errs...)
}

// PartEntity is the poll_state entity of the changes of a customer part
// in a company.
func PartEntity(part, company string) string { return Entity(KindCustomer+"-"+part, company) }

// pollParts publishes the customers whose address, contact methods,
// payment address or company data changed without CustomerInfo changing:
// per part, the rows changed from the part's watermark minus the overlap
// (those not handled in this version before) name the customers, which
// are read whole and published; then the part's watermark moves. The
// customer's version folds in every part's ETag, so it is a new message.
// A part's first poll only places its watermark at its newest row: the
// customers' own first read covered what the parts held.
func (p *Poller) pollParts(ctx context.Context, company string, st *Stats) error {
	for _, part := range ifscloud.Parts {
		entity := PartEntity(part, company)
		state, err := p.Watermarks.Load(ctx, p.ConnectionID, entity)
		if err != nil {
			return err
		}
		if state.Mark.IsZero() {
			latest, err := p.Source.LatestPartChange(ctx, company, part)
			if err != nil {
				return fmt.Errorf("%s: %w", part, err)
			}
			if !latest.IsZero() {
				if err := p.Watermarks.Save(ctx, p.ConnectionID, entity, ifscloud.Watermark{Time: latest}, nil, nil); err != nil {
					return err
				}
			}
			continue
		}
		err = p.Source.PartChanges(ctx, company, part, state.From, func(rows []ifscloud.PartRow) error {
			var handled []watermark.Row
			var last ifscloud.Watermark
			ids := map[string]bool{}
			for _, r := range rows {
				if r.Modified.After(last.Time) {
					last = ifscloud.Watermark{Time: r.Modified, Key: r.Key}
				}
				wr := watermark.Row{Key: r.Key, Version: r.ETag, At: r.Modified}
				if state.Fresh(wr) {
					handled = append(handled, wr)
					ids[r.CustomerID] = true
				}
			}
			if len(handled) == 0 {
				return nil // the overlap window again, nothing new
			}
			pg, err := p.Source.CustomersByID(ctx, company, slices.Sorted(maps.Keys(ids)))
			if err != nil {
				return err
			}
			msgs, rejected := customerMessages(p.Connection, company, KindCustomer, pg)
			return p.commitPage(ctx, company, KindCustomer, entity, msgs, rejected, last, handled, st)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", part, err)
		}
	}
	return nil
}

// Entity is the poll_state entity of a company's customers or invoices.
func Entity(kind, company string) string { return kind + ":" + company }

func (p *Poller) poll(ctx context.Context, company, kind string, st *Stats) error {
	entity := Entity(kind, company)
	state, err := p.Watermarks.Load(ctx, p.ConnectionID, entity)
	if err != nil {
		return err
	}
	from := ifscloud.Watermark{Time: state.From} // the overlap window's start, rows at it included
	// fresh keeps the rows not handled before in this version; a row
	// whose key or time is unreadable is reported each time it is read
	// (its exception once).
	fresh := func(key, version string, at time.Time, handled *[]watermark.Row) bool {
		if key == "" || at.IsZero() {
			return true
		}
		r := watermark.Row{Key: key, Version: version, At: at}
		if !state.Fresh(r) {
			return false
		}
		*handled = append(*handled, r)
		return true
	}
	page := func(msgs []bus.Msg, rejected []Rejected, last ifscloud.Watermark, handled []watermark.Row) error {
		return p.commitPage(ctx, company, kind, entity, msgs, rejected, last, handled, st)
	}
	switch kind {
	case KindCustomer:
		return p.Source.Customers(ctx, company, from, func(pg ifscloud.CustomerPage) error {
			var handled []watermark.Row
			pg.Customers = slices.DeleteFunc(pg.Customers, func(c ifscloud.Customer) bool {
				return !fresh(c.CustomerID, c.ETag, c.Modified, &handled)
			})
			pg.Invalid = slices.DeleteFunc(pg.Invalid, func(r ifscloud.Invalid) bool {
				return !fresh(r.Key, r.Version, r.Modified, &handled)
			})
			msgs, rejected := customerMessages(p.Connection, company, kind, pg)
			return page(msgs, rejected, pg.Last, handled)
		})
	default:
		return p.Source.Invoices(ctx, company, from, func(pg ifscloud.InvoicePage) error {
			var handled []watermark.Row
			pg.Invoices = slices.DeleteFunc(pg.Invoices, func(inv ifscloud.Invoice) bool {
				return !fresh(inv.InvoiceID, inv.ETag, inv.Modified, &handled)
			})
			pg.Invalid = slices.DeleteFunc(pg.Invalid, func(r ifscloud.Invalid) bool {
				return !fresh(r.Key, r.Version, r.Modified, &handled)
			})
			msgs, rejected := invoiceMessages(p.Connection, company, kind, pg)
			return page(msgs, rejected, pg.Last, handled)
		})
	}
}

// commitPage publishes one page's messages and, once JetStream
// acknowledged them all, records its rejected rows and handled rows and
// moves entity's watermark past it.
func (p *Poller) commitPage(ctx context.Context, company, kind, entity string, msgs []bus.Msg, rejected []Rejected,
	last ifscloud.Watermark, handled []watermark.Row, st *Stats) error {
	if err := p.publish(ctx, company, kind, msgs, st); err != nil {
		return err
	}
	if err := p.Watermarks.Save(ctx, p.ConnectionID, entity, last, rejected, handled); err != nil {
		return err
	}
	for _, r := range rejected {
		p.Log.WarnContext(ctx, "ifs record not published: recorded as exception",
			"connection", p.Connection, "company", company, "kind", kind, "key", r.Key, "reason", r.Reason)
	}
	p.Metrics.rejected(ctx, p.Connection, company, kind, len(rejected))
	st.Rejected += len(rejected)
	st.Pages++
	return nil
}

// publish stores msgs in batches and returns once JetStream acknowledged
// every one.
func (p *Poller) publish(ctx context.Context, company, kind string, msgs []bus.Msg, st *Stats) error {
	size := p.BatchSize
	if size <= 0 {
		size = 1000
	}
	for start := 0; start < len(msgs); start += size {
		acks, err := p.Publisher.PublishBatch(ctx, msgs[start:min(start+size, len(msgs))])
		if err != nil {
			return err
		}
		fresh, dup := 0, 0
		for _, a := range acks {
			if a.Duplicate {
				dup++
			} else {
				fresh++
			}
		}
		st.Published += fresh
		st.Duplicates += dup
		p.Metrics.published(ctx, p.Connection, company, kind, fresh, dup)
	}
	return nil
}
