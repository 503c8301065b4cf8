package poll_test

import (
	"context"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/services/ifs-poller/internal/poll"
)

// IFS stamps a row's modified time before the commit: a row written after
// a poll in the watermark's own instant with a lower key, or committed
// late with an earlier time, sorts before a (modified, key) watermark.
// Both must be read, once; rows re-read over the overlap window are not
// published again.
func TestRowWrittenLateBeforeTheWatermarkIsRead(t *testing.T) {
	f := setup(t, ifssim.Config{Budget: -1}, nil, ifscloud.Options{})
	for _, id := range []int64{2, 3, 4} {
		if err := f.sim.PutInvoices(invoice("10", id, ifssim.StatePostedAuth, base)); err != nil {
			t.Fatal(err)
		}
	}
	p := f.poller(nil)
	cycle := func() poll.Stats {
		t.Helper()
		st, err := p.Cycle(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := cycle(); st.Published != 3 {
		t.Fatalf("first cycle %+v", st)
	}
	if err := f.sim.PutInvoices(
		invoice("10", 1, ifssim.StatePostedAuth, base),                      // the watermark's instant, a lower key
		invoice("10", 5, ifssim.StatePostedAuth, base.Add(-20*time.Second)), // committed late
	); err != nil {
		t.Fatal(err)
	}
	if st := cycle(); st.Published != 2 || st.Duplicates != 0 {
		t.Fatalf("second cycle %+v: want the two late invoices, nothing re-sent", st)
	}
	if got := f.counts()["mlc.erp.ifs.10.invoice"]; got != 5 {
		t.Fatalf("stream holds %d invoices, want 5", got)
	}
	if st := cycle(); st.Published != 0 || st.Duplicates != 0 {
		t.Fatalf("third cycle %+v: rows of the overlap window sent again", st)
	}
	for _, q := range f.queries("CustomerOrderInvHeadSet")[1:] {
		if want := "Rowversion ge 2026-01-01T09:59:00Z"; len(q) < len(want) || q[len(q)-len(want):] != want {
			t.Errorf("re-read %q does not start an overlap window before the watermark", q)
		}
	}
}
