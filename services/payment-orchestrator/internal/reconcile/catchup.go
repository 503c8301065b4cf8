package reconcile

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcmsg"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// Publisher makes messages durable; *bus.Bus is one.
type Publisher interface {
	PublishBatch(ctx context.Context, msgs []bus.Msg) ([]bus.Ack, error)
}

// CatchUp reads GoCardless's GET /events for every GoCardless connection
// and publishes the events like gc-webhook does, so an event whose webhook
// was lost is applied anyway; the ones that did arrive are dropped by the
// de-duplication on the way. The cursor is the created_at of the newest
// event published, stored per connection only after the publishes were
// acknowledged; each pass re-reads an overlap before it, because events
// created in the same instant may become visible in a different order.
type CatchUp struct {
	Ledger   *ledger.Ledger
	Dir      *accounts.Directory
	Bus      Publisher
	Log      *slog.Logger
	Interval time.Duration // between passes
	Overlap  time.Duration // re-read before the cursor
	Lookback time.Duration // how far back a connection without a cursor starts
	// LeaseTime is how long a connection's catch-up lease outlives the
	// replica holding it once that replica stops renewing it (killed in
	// mid-pass): the longest the other replicas' catch-up stops for. A pass
	// renews its lease every third of it, so a pass may take longer.
	// Zero means DefaultCatchUpLease.
	LeaseTime time.Duration
}

// DefaultCatchUpLease is CatchUp.LeaseTime unless set.
const DefaultCatchUpLease = 30 * time.Second

// Run makes a pass every Interval until ctx ends. One replica at a time
// reads a connection (a lease per connection, so that no database
// connection is held while GoCardless answers); the others skip it.
func (c *CatchUp) Run(ctx context.Context) error {
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		if err := c.Pass(ctx); err != nil && ctx.Err() == nil {
			c.Log.WarnContext(ctx, "events catch-up pass failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Pass catches up every GoCardless connection once.
func (c *CatchUp) Pass(ctx context.Context) error {
	conns, err := c.Dir.GoCardlessConnections(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, conn := range conns {
		aggID := conn.Name
		_, _, err := c.Ledger.Claim(ctx, catchUpLease, aggID, holder, nil, c.leaseTime(), "")
		if errors.As(err, new(*ledger.BusyError)) {
			continue // another replica is reading it
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n, newest, err := c.renewing(ctx, aggID, func(ctx context.Context) (int, time.Time, error) { return c.connection(ctx, conn) })
		if err == nil {
			err = c.Ledger.SaveEventCursor(ctx, catchUpLease, aggID, holder, conn.ID, newest)
		}
		if err != nil {
			_ = c.Ledger.Release(context.WithoutCancel(ctx), catchUpLease, aggID, holder)
			errs = append(errs, fmt.Errorf("catch-up %s: %w", conn.Name, err))
		} else if n > 0 {
			c.Log.InfoContext(ctx, "events catch-up", "connection", conn.Name, "events", n)
		}
	}
	return errors.Join(errs...)
}

// renewing runs pass while renewing the lease of aggID every third of
// the lease time, and stops renewing before it returns, so that the
// caller's release is the last word on the lease. A lease found taken
// over (it expired while its renewals failed) ends the pass.
func (c *CatchUp) renewing(ctx context.Context, aggID string, pass func(context.Context) (int, time.Time, error)) (int, time.Time, error) {
	d := c.leaseTime()
	pctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d / 3)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
			err := c.Ledger.Renew(pctx, catchUpLease, aggID, holder, d)
			if errors.Is(err, ledger.ErrLeaseLost) {
				cancel(err)
				return
			}
			if err != nil && pctx.Err() == nil {
				c.Log.WarnContext(ctx, "events catch-up lease not renewed", "connection", aggID, "error", err)
			}
		}
	}()
	n, newest, err := pass(pctx)
	lost := context.Cause(pctx)
	cancel(nil)
	<-done
	if err != nil && errors.Is(lost, ledger.ErrLeaseLost) {
		err = lost
	}
	return n, newest, err
}

func (c *CatchUp) leaseTime() time.Duration {
	if c.LeaseTime > 0 {
		return c.LeaseTime
	}
	return DefaultCatchUpLease
}

// connection publishes the events of conn since its cursor, oldest first,
// and returns how many, and the new cursor (zero when it does not move).
//
// Oldest first, because the consumers take events nearly in the order
// they are published, and an outcome read newest first reaches the ERP
// in reverse (an instalment's failure posted before its confirmation).
// GoCardless lists newest first, so a pass reads the whole list (after
// cursors) and sorts it, holding at most holdPages pages: the overlap
// alone is CATCHUP_OVERLAP of events (at 100 events/s the default 5
// minutes is 30,000), and a first pass reads CATCHUP_LOOKBACK of them;
// held whole they were most of the orchestrator's heap. A longer list is
// published a page at a time, from the oldest page to the newest: the
// first read keeps the newest page and each page's after cursor (an id),
// and each older page is read again, oldest first, by the cursor of the
// page before it; then the newest page. One more request per page, two
// pages held. Only after cursors are used: GoCardless documents that
// after=X continues the list past X, and says less of before. A page read
// again must begin where it began the first time; if it does not (the
// list changed under the pass), the pass fails and its cursor stays.
func (c *CatchUp) connection(ctx context.Context, conn connections.Connection) (int, time.Time, error) {
	_, client, err := c.Dir.GoCardless(ctx, conn.Name)
	if err != nil {
		return 0, time.Time{}, err
	}
	cursor, err := c.cursor(ctx, conn.ID)
	if err != nil {
		return 0, time.Time{}, err
	}
	pub := &publication{c: c, conn: conn.Name, env: gcmsg.Envelope{Connection: conn.Name, Source: gcmsg.FromEventsAPI, ReceivedAt: time.Now()}}
	params := gocardless.EventListParams{ListParams: gocardless.ListParams{Limit: gocardless.MaxLimit, CreatedAt: gocardless.TimeRange{GTE: cursor.Add(-c.Overlap)}}}
	var (
		held     []gocardless.Event // every page read, until there are too many
		newest   []gocardless.Event // the first page
		pages    []pageStart        // each page after the first: its cursor and first id
		overflow bool
	)
	for {
		page, err := client.ListEvents(ctx, params)
		if err != nil {
			return 0, time.Time{}, err
		}
		if len(page.Items) == 0 {
			break // an after cursor on a full last page leads to an empty one
		}
		if newest == nil {
			newest = page.Items
		} else {
			pages = append(pages, pageStart{after: params.After, first: page.Items[0].ID})
		}
		if !overflow {
			held = append(held, page.Items...)
			if overflow = len(held) > holdPages*gocardless.MaxLimit; overflow {
				held = nil
			}
		}
		if page.After == "" {
			break
		}
		params.After = page.After
	}
	if !overflow {
		if err := pub.events(ctx, held); err != nil {
			return 0, time.Time{}, err
		}
		return pub.n, pub.newer(cursor), nil
	}
	for _, p := range slices.Backward(pages) {
		params.After = p.after
		page, err := client.ListEvents(ctx, params)
		if err != nil {
			return 0, time.Time{}, err
		}
		if len(page.Items) == 0 || page.Items[0].ID != p.first {
			return 0, time.Time{}, fmt.Errorf("events after %s changed during the pass (began with %s, now %d events)", p.after, p.first, len(page.Items))
		}
		if err := pub.events(ctx, page.Items); err != nil {
			return 0, time.Time{}, err
		}
	}
	if err := pub.events(ctx, newest); err != nil {
		return 0, time.Time{}, err
	}
	return pub.n, pub.newer(cursor), nil
}

// pageStart is where a page of the events list began: the after cursor
// that read it, and its first (newest) event.
type pageStart struct{ after, first string }

// holdPages is how many pages of events a pass holds to sort them.
const holdPages = 2

// publication publishes one connection's events for a pass and counts
// them.
type publication struct {
	c      *CatchUp
	conn   string
	env    gcmsg.Envelope
	n      int
	newest time.Time
}

// events publishes evs oldest first, publishChunk at a time.
func (p *publication) events(ctx context.Context, evs []gocardless.Event) error {
	slices.SortFunc(evs, func(a, b gocardless.Event) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	for chunk := range slices.Chunk(evs, publishChunk) {
		msgs := make([]bus.Msg, 0, len(chunk))
		for _, ev := range chunk {
			msgs = append(msgs, p.c.message(ctx, p.conn, p.env, ev))
			if ev.CreatedAt.After(p.newest) {
				p.newest = ev.CreatedAt
			}
		}
		if _, err := p.c.Bus.PublishBatch(ctx, msgs); err != nil {
			return err
		}
		p.n += len(msgs)
	}
	return nil
}

// newer is the newest event published if it is after cursor, else zero.
func (p *publication) newer(cursor time.Time) time.Time {
	if p.newest.After(cursor) {
		return p.newest
	}
	return time.Time{}
}

// publishChunk is how many events a pass publishes at once.
const publishChunk = 250

// message is ev as gc-webhook would publish it or, out of GoCardless's
// shapes, as a dead letter (an exception), so that the pass, and the
// cursor, move on.
func (c *CatchUp) message(ctx context.Context, connection string, env gcmsg.Envelope, ev gocardless.Event) bus.Msg {
	m, err := gcmsg.BusMsg(ev, env)
	if err == nil {
		err = bus.CheckMsg(m, maxPayload(c.Bus))
	}
	if err == nil {
		return m
	}
	c.Log.WarnContext(ctx, "caught-up event out of bounds, kept as a dead letter", "connection", connection, "reason", err, "bytes", len(ev.Raw))
	return gcmsg.DeadLetter(gcmsg.Refused{Source: "events-catch-up", Connection: connection, Reason: err.Error(), Raw: ev.Raw}, maxPayload(c.Bus))
}

func (c *CatchUp) cursor(ctx context.Context, connectionID int64) (time.Time, error) {
	t, err := c.Ledger.EventCursor(ctx, connectionID)
	if errors.Is(err, ledger.ErrNotFound) {
		return time.Now().Add(-c.Lookback), nil
	}
	return t, err
}

// The catch-up lease of a GoCardless connection: held by one replica's
// pass, renewed while it runs, given up with the cursor it stored, and
// taken over by another replica LeaseTime after the pass died.
const catchUpLease = "events-catch-up"

// holder names this process's catch-up passes.
var holder = func() string {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
}()

// maxPayload is the largest message p's server accepts, or 0 when p does
// not say (PublishBatch still checks).
func maxPayload(p Publisher) int64 {
	if b, ok := p.(interface{ MaxPayload() int64 }); ok {
		return b.MaxPayload()
	}
	return 0
}
