package watermark_test

import (
	"context"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/platform/watermark"
)

var t0 = time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC)

func TestWindowDedupAndPrune(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	var conn int64
	if err := pool.QueryRow(ctx, `INSERT INTO connections (name, kind, settings) VALUES ('c', 'jde', '{}') RETURNING id`).Scan(&conn); err != nil {
		t.Fatal(err)
	}
	s, err := watermark.New(pool, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Load(ctx, conn, "e")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Mark.IsZero() || !st.From.IsZero() || !st.Fresh(watermark.Row{Key: "a", Version: "1", At: t0.Add(-24 * time.Hour)}) {
		t.Fatalf("before any save: %+v, every row must be fresh", st)
	}
	old := watermark.Row{Key: "old", Version: "1", At: t0.Add(-2 * time.Minute)}
	a := watermark.Row{Key: "a", Version: "1", At: t0}
	b := watermark.Row{Key: "b", Version: "1", At: t0.Add(-30 * time.Second)}
	if err := s.Save(ctx, conn, "e", watermark.Mark{At: t0, Key: "a"}, []watermark.Row{old, a, b}); err != nil {
		t.Fatal(err)
	}
	if st, err = s.Load(ctx, conn, "e"); err != nil {
		t.Fatal(err)
	}
	if !st.Mark.At.Equal(t0) || st.Mark.Key != "a" || !st.From.Equal(t0.Add(-time.Minute)) || st.Seen() != 2 {
		t.Fatalf("state = %+v, seen %d: want the mark, From a minute before, a and b (not the row before the window)", st, st.Seen())
	}
	for _, c := range []struct {
		r     watermark.Row
		fresh bool
	}{
		{a, false},
		{b, false},
		{watermark.Row{Key: "a", Version: "2", At: t0}, true},                         // changed again in the same second
		{watermark.Row{Key: "c", Version: "1", At: t0.Add(-10 * time.Second)}, true},  // late, within the window
		{watermark.Row{Key: "d", Version: "1", At: t0.Add(-61 * time.Second)}, false}, // before the window
	} {
		if got := st.Fresh(c.r); got != c.fresh {
			t.Errorf("Fresh(%+v) = %v, want %v", c.r, got, c.fresh)
		}
	}

	// A replica that lost its lock saves an older mark: the watermark stays,
	// and its rows are recorded against the newer window.
	later := watermark.Row{Key: "z", Version: "1", At: t0.Add(50 * time.Second)}
	if err := s.Save(ctx, conn, "e", watermark.Mark{At: t0.Add(50 * time.Second), Key: "z"}, []watermark.Row{later}); err != nil {
		t.Fatal(err)
	}
	stale := watermark.Row{Key: "s", Version: "1", At: t0.Add(-20 * time.Second)}
	if err := s.Save(ctx, conn, "e", watermark.Mark{At: t0, Key: "a"}, []watermark.Row{stale}); err != nil {
		t.Fatal(err)
	}
	if st, err = s.Load(ctx, conn, "e"); err != nil {
		t.Fatal(err)
	}
	// Window from t0-10s: b (t0-30s) and the stale row (t0-20s) are out.
	if st.Mark.Key != "z" || st.Fresh(later) || st.Fresh(a) || st.Seen() != 2 {
		t.Fatalf("after a stale save: %+v, seen %d", st, st.Seen())
	}
	var stored int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM poll_seen WHERE connection_id = $1`, conn).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 2 {
		t.Fatalf("poll_seen holds %d rows, want the 2 of the window", stored)
	}

	if _, err := watermark.New(pool, watermark.MaxOverlap+time.Second); err == nil {
		t.Error("an overlap beyond MaxOverlap was accepted")
	}
	if _, err := watermark.New(pool, -time.Second); err == nil {
		t.Error("a negative overlap was accepted")
	}
}
