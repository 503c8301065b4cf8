package watermark_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/platform/watermark"
)

// BenchmarkSave100kInOneSecond records a bulk load of 100,000 rows changed
// in one second, as a poller does: in batches of 1,000, each with its
// watermark, against real Postgres; then a cycle's Load of the window.
// Each iteration changes every row again (new versions, one second later).
//
//	go test -run '^$' -bench Save100k -benchtime 3x ./watermark/
func BenchmarkSave100kInOneSecond(b *testing.B) {
	ctx := context.Background()
	pool := testsupport.Pool(b)
	var conn int64
	if err := pool.QueryRow(ctx, `INSERT INTO connections (name, kind, settings) VALUES ('c', 'jde', '{}') RETURNING id`).Scan(&conn); err != nil {
		b.Fatal(err)
	}
	s, err := watermark.New(pool, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	const n, batch = 100_000, 1000
	at := t0
	b.ResetTimer()
	for i := range b.N {
		at = at.Add(time.Second)
		for start := 0; start < n; start += batch {
			rows := make([]watermark.Row, batch)
			for j := range rows {
				rows[j] = watermark.Row{Key: fmt.Sprintf("%012d/RI/001", start+j), Version: fmt.Sprint(i), At: at}
			}
			if err := s.Save(ctx, conn, "F03B11:00001", watermark.Mark{At: at, Key: rows[batch-1].Key}, rows); err != nil {
				b.Fatal(err)
			}
		}
		st, err := s.Load(ctx, conn, "F03B11:00001")
		if err != nil || st.Seen() != n {
			b.Fatalf("loaded %d rows, %v", st.Seen(), err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}
