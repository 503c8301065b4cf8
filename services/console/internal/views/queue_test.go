package views

import (
	"context"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/platform/testsupport/await"
	"github.com/ml-connector/ml-connector/platform/testsupport/fake"
)

// TestTotalsRecountedInTheBackground: a filter's count is reused while
// fresh; once stale, the page still answers at once with the old count
// and the recount lands in the background; Forget makes the next view
// count anew.
func TestTotalsRecountedInTheBackground(t *testing.T) {
	ctx := context.Background()
	db := testsupport.Pool(t)
	v := New(db, nil)
	clock := fake.NewClock(time.Now())
	v.now = clock.Now
	addException := func() {
		t.Helper()
		if _, err := db.Exec(ctx, `INSERT INTO exceptions (kind, aggregate_type, aggregate_id, reason)
			VALUES ('invalid_invoice', 'invoice', 'ifs-acme:10:BAD-' || gen_random_uuid(), 'bad amount')`); err != nil {
			t.Fatal(err)
		}
	}
	total := func() int {
		t.Helper()
		var p Page
		f := Filter{}
		if err := f.Check(); err != nil {
			t.Fatal(err)
		}
		if err := v.totals(ctx, f, []any{"open", "", "", "", time.Now(), ""}, &p); err != nil {
			t.Fatal(err)
		}
		return p.Total
	}
	addException()
	if n := total(); n != 1 {
		t.Fatalf("first count: %d, want 1", n)
	}
	addException()
	if n := total(); n != 1 {
		t.Fatalf("a fresh count was not reused: %d", n)
	}
	clock.Advance(totalsTTL)
	if n := total(); n != 1 {
		t.Fatalf("a stale count made the view wait for a recount: %d", n)
	}
	await.Until(t, 10*time.Second, "the background recount", func() bool { return total() == 2 })
	addException()
	v.Forget()
	if n := total(); n != 3 {
		t.Fatalf("after Forget: %d, want 3 counted at once", n)
	}
}
