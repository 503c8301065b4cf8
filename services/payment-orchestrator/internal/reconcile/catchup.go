package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcmsg"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
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
	DB       *pgxpool.Pool
	Dir      *accounts.Directory
	Bus      Publisher
	Log      *slog.Logger
	Interval time.Duration // between passes
	Overlap  time.Duration // re-read before the cursor
	Lookback time.Duration // how far back a connection without a cursor starts
}

// Run makes a pass every Interval until ctx ends. One replica at a time
// reads a connection (an advisory lock per connection); the others skip it.
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
		lock, held, err := database.TryLock(ctx, c.DB, "gc-catchup:"+conn.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !held {
			continue
		}
		n, err := c.connection(ctx, conn)
		_ = lock.Release(context.WithoutCancel(ctx))
		if err != nil {
			errs = append(errs, fmt.Errorf("catch-up %s: %w", conn.Name, err))
		} else if n > 0 {
			c.Log.InfoContext(ctx, "events catch-up", "connection", conn.Name, "events", n)
		}
	}
	return errors.Join(errs...)
}

func (c *CatchUp) connection(ctx context.Context, conn connections.Connection) (int, error) {
	_, client, err := c.Dir.GoCardless(ctx, conn.Name)
	if err != nil {
		return 0, err
	}
	cursor, err := c.cursor(ctx, conn.ID)
	if err != nil {
		return 0, err
	}
	var events []gocardless.Event
	params := gocardless.EventListParams{ListParams: gocardless.ListParams{Limit: gocardless.MaxLimit, CreatedAt: gocardless.TimeRange{GTE: cursor.Add(-c.Overlap)}}}
	for ev, err := range client.Events(ctx, params) {
		if err != nil {
			return 0, err
		}
		events = append(events, ev)
	}
	if len(events) == 0 {
		return 0, nil
	}
	slices.SortFunc(events, func(a, b gocardless.Event) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	env := gcmsg.Envelope{Connection: conn.Name, Source: gcmsg.FromEventsAPI, ReceivedAt: time.Now()}
	for batch := range slices.Chunk(events, 250) {
		msgs := make([]bus.Msg, 0, len(batch))
		for _, ev := range batch {
			m, err := gcmsg.BusMsg(ev, env)
			if err != nil {
				return 0, err
			}
			msgs = append(msgs, m)
		}
		if _, err := c.Bus.PublishBatch(ctx, msgs); err != nil {
			return 0, err
		}
	}
	newest := events[len(events)-1].CreatedAt
	if newest.After(cursor) {
		if _, err := c.DB.Exec(ctx, `INSERT INTO event_cursors (connection_id, cursor) VALUES ($1, $2)
			ON CONFLICT (connection_id) DO UPDATE SET cursor = excluded.cursor`, conn.ID, newest.UTC().Format(time.RFC3339Nano)); err != nil {
			return 0, fmt.Errorf("store cursor: %w", err)
		}
	}
	return len(events), nil
}

func (c *CatchUp) cursor(ctx context.Context, connectionID int64) (time.Time, error) {
	var text string
	err := c.DB.QueryRow(ctx, `SELECT cursor FROM event_cursors WHERE connection_id = $1`, connectionID).Scan(&text)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Now().Add(-c.Lookback), nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339Nano, text)
}
