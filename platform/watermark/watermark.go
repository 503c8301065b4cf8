// Package watermark keeps where an ERP poller is in a table's change
// order (poll_state) and which row versions it handled near that point
// (poll_seen), so that every changed row is published and none twice.
//
// ERPs stamp a row's change with a coarse time written before the commit:
// JD Edwards UPMJ/UPMT has a resolution of one second, and a row committed
// late, or stamped by an application server whose clock lags, appears with
// a stamp the watermark has already passed. A (time, key) watermark alone
// then skips it for good. So a poller reads again from the watermark minus
// an overlap window, and a re-read row is handled again only when its
// version differs from the one recorded in poll_seen. poll_seen keeps only
// the rows changed within one window of the watermark, pruned as the
// watermark moves: a cycle costs one read of those rows and a batch insert
// per published batch, linear in the rows changed within the window, even
// for a bulk load of thousands of rows in one second.
//
// A row's version is the poller's to choose, and a second change is
// handled only if its version differs from the first's: a stamp of one
// second's resolution alone would drop a change made within the second of
// the one handled, so the JD Edwards poller adds a digest of the columns
// it read.
//
// No money passes through here.
package watermark

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/database"
)

// MaxOverlap bounds the overlap window: the rows of the window are read
// and compared every cycle.
const MaxOverlap = time.Hour

// Bounds of what poll_seen stores (its CHECK constraints).
const (
	MaxKeyLen     = 512
	MaxVersionLen = 512
)

// Mark is a position in a table's change order: the change time of the
// newest row handled and its key. Reads start from the time; the key says
// which row it was.
type Mark struct {
	At  time.Time
	Key string
}

// IsZero reports whether m is the start of the table.
func (m Mark) IsZero() bool { return m.At.IsZero() && m.Key == "" }

// Compare orders marks by time, then key.
func (m Mark) Compare(o Mark) int {
	if c := m.At.Compare(o.At); c != 0 {
		return c
	}
	return cmp.Compare(m.Key, o.Key)
}

// Row is a row a poller handled: its key within the entity, its version
// (its change stamp, with a digest of its columns for JD Edwards; it also
// names its message) and its change time.
type Row struct {
	Key     string
	Version string
	At      time.Time
}

// Store keeps watermarks and the rows of their overlap windows.
type Store struct {
	DB *pgxpool.Pool
	// Overlap is how far before the watermark each read starts again
	// (0 to MaxOverlap; 0 still re-reads the watermark's own instant).
	Overlap time.Duration
}

// New returns a store, refusing an overlap outside 0..MaxOverlap.
func New(db *pgxpool.Pool, overlap time.Duration) (*Store, error) {
	if db == nil {
		return nil, errors.New("watermark: database is required")
	}
	if overlap < 0 || overlap > MaxOverlap {
		return nil, fmt.Errorf("watermark: overlap %s is not between 0 and %s", overlap, MaxOverlap)
	}
	return &Store{DB: db, Overlap: overlap}, nil
}

// State is where an entity's poll stands.
type State struct {
	Mark Mark
	// From is the earliest change time the next read must cover: the
	// mark's time minus the overlap; zero before the first save (read
	// everything).
	From time.Time
	seen map[string]string
}

// Fresh reports whether a row read from From on must be handled: it
// changed at or after From and its version is not the one handled before.
func (s State) Fresh(r Row) bool {
	if r.At.Before(s.From) {
		return false
	}
	v, ok := s.seen[r.Key]
	return !ok || v != r.Version
}

// Seen is how many rows of the window were handled already.
func (s State) Seen() int { return len(s.seen) }

// Load returns entity's watermark and the row versions handled within
// its overlap window.
func (s *Store) Load(ctx context.Context, connectionID int64, entity string) (State, error) {
	var st State
	err := s.DB.QueryRow(ctx,
		`SELECT watermark_time, watermark_key FROM poll_state WHERE connection_id = $1 AND entity = $2`,
		connectionID, entity).Scan(&st.Mark.At, &st.Mark.Key)
	if errors.Is(err, pgx.ErrNoRows) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("load watermark %s: %w", entity, err)
	}
	st.From = st.Mark.At.Add(-s.Overlap)
	rows, err := s.DB.Query(ctx,
		`SELECT key, version FROM poll_seen WHERE connection_id = $1 AND entity = $2 AND changed_at >= $3`,
		connectionID, entity, st.From)
	if err != nil {
		return State{}, fmt.Errorf("load rows seen of %s: %w", entity, err)
	}
	st.seen = map[string]string{}
	var key, version string
	_, err = pgx.ForEachRow(rows, []any{&key, &version}, func() error {
		st.seen[key] = version
		return nil
	})
	if err != nil {
		return State{}, fmt.Errorf("load rows seen of %s: %w", entity, err)
	}
	return st, nil
}

// Save runs Advance in a transaction of its own.
func (s *Store) Save(ctx context.Context, connectionID int64, entity string, m Mark, handled []Row) error {
	return database.WithTx(ctx, s.DB, func(tx pgx.Tx) error {
		return s.Advance(ctx, tx, connectionID, entity, m, handled)
	})
}

// Advance, within tx, moves entity's watermark to m unless it is already
// later (a replica that lost its lock must not move it back), records the
// handled rows that fall within the overlap window of the watermark, and
// forgets the rows that fell out of it. Call it only once every message of
// the handled rows was acknowledged.
func (s *Store) Advance(ctx context.Context, tx pgx.Tx, connectionID int64, entity string, m Mark, handled []Row) error {
	if m.At.IsZero() {
		return fmt.Errorf("save watermark %s: no change time", entity)
	}
	// The stored time before and after: rows fall out of the window only
	// when it moves, so a bulk load saved batch by batch within one second
	// prunes nothing until the watermark leaves that second.
	var before *time.Time
	err := tx.QueryRow(ctx, `SELECT watermark_time FROM poll_state WHERE connection_id = $1 AND entity = $2 FOR UPDATE`,
		connectionID, entity).Scan(&before)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("save watermark %s: %w", entity, err)
	}
	at := m.At
	if before != nil && before.After(m.At) {
		at = *before // another replica is further on: its window counts
	} else {
		_, err = tx.Exec(ctx, `
			INSERT INTO poll_state (connection_id, entity, watermark_time, watermark_key) VALUES ($1, $2, $3, $4)
			ON CONFLICT (connection_id, entity) DO UPDATE
			SET watermark_time = EXCLUDED.watermark_time, watermark_key = EXCLUDED.watermark_key`,
			connectionID, entity, m.At, m.Key)
		if err != nil {
			return fmt.Errorf("save watermark %s: %w", entity, err)
		}
	}
	cutoff := at.Add(-s.Overlap)
	// One entry per key, the latest change: ON CONFLICT may not touch a
	// row twice in one statement.
	latest := make(map[string]Row, len(handled))
	for _, r := range handled {
		// Keys and versions beyond the column bounds are not recorded:
		// such a row is handled again while it is in the window, which
		// costs a re-read, never a loss.
		if r.Key == "" || len(r.Key) > MaxKeyLen || len(r.Version) > MaxVersionLen || r.At.Before(cutoff) {
			continue
		}
		if prev, ok := latest[r.Key]; !ok || !r.At.Before(prev.At) {
			latest[r.Key] = r
		}
	}
	if len(latest) > 0 {
		keys := make([]string, 0, len(latest))
		versions := make([]string, 0, len(latest))
		ats := make([]time.Time, 0, len(latest))
		for _, r := range latest {
			keys, versions, ats = append(keys, r.Key), append(versions, r.Version), append(ats, r.At)
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO poll_seen AS s (connection_id, entity, key, version, changed_at)
			SELECT $1, $2, k, v, a FROM unnest($3::text[], $4::text[], $5::timestamptz[]) AS r(k, v, a)
			ON CONFLICT (connection_id, entity, key) DO UPDATE
			SET version = EXCLUDED.version, changed_at = EXCLUDED.changed_at
			WHERE s.changed_at <= EXCLUDED.changed_at`,
			connectionID, entity, keys, versions, ats)
		if err != nil {
			return fmt.Errorf("record rows seen of %s: %w", entity, err)
		}
	}
	if before != nil && at.After(*before) {
		if _, err := tx.Exec(ctx, `DELETE FROM poll_seen WHERE connection_id = $1 AND entity = $2 AND changed_at < $3`,
			connectionID, entity, cutoff); err != nil {
			return fmt.Errorf("prune rows seen of %s: %w", entity, err)
		}
	}
	return nil
}
