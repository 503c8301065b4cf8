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

// Cycle polls every company once: customers first, so that a consumer
// reading in order tends to meet a customer before its invoices (it must
// not rely on it). A failure in one company does not stop the others.
func (p *Poller) Cycle(ctx context.Context) (Stats, error) {
	var st Stats
	var errs []error
	for _, company := range p.Companies {
		for _, kind := range []string{KindCustomer, KindInvoice} {
			if err := p.poll(ctx, company, kind, &st); err != nil {
				errs = append(errs, fmt.Errorf("company %s %ss: %w", company, kind, err))
				if ctx.Err() != nil {
					return st, errors.Join(errs...)
				}
			}
		}
	}
	return st, errors.Join(errs...)
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
	// page publishes one page and then moves the watermark past it.
	page := func(msgs []bus.Msg, rejected []Rejected, last ifscloud.Watermark, handled []watermark.Row) error {
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
