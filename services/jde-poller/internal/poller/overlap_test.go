package poller_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	"github.com/ml-connector/ml-connector/services/jde-poller/internal/poller"
)

// keysOf lists the message ids of msgs without their versions, sorted.
func keysOf(msgs []published) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.id[:strings.LastIndex(m.id, ":")])
	}
	slices.Sort(out)
	return out
}

func (h *harness) seenRows(entity string) int {
	h.t.Helper()
	var n int
	if err := h.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM poll_seen WHERE connection_id = $1 AND entity = $2`, h.connID, entity).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// UPMT has one-second resolution: a row JDE writes after a poll, within
// the second of the watermark and with a lower key, sorts before the
// watermark. make chaos seed 303 lost two JDE refunds this way. It must be
// read, once; so must a row stamped a little before the watermark (an
// enterprise server whose clock lags, a late commit).
func TestRowWrittenLateInTheWatermarksSecondIsRead(t *testing.T) {
	h := newHarness(t, jdesim.Options{}, nil)
	customer(h.sim, 4001, "Acme", "GBP", "00001")
	customer(h.sim, 4003, "Other", "GBP", "00001")
	h.sim.AddInvoices(invoices("00001", 4001, 1001, 3)...)
	p := h.poller(nil)
	h.cycle(p)
	if n := len(h.drain()); n != 5 {
		t.Fatalf("first cycle published %d messages, want 2 customers and 3 invoices", n)
	}

	// The same second as the watermark (1003/RI/001): a lower-key invoice,
	// a refund and a new customer whose keys sort before the watermarks'.
	h.sim.AddInvoices(invoices("00001", 4001, 1000, 1)...)
	h.sim.AddInvoices(jdesim.Invoice{DOC: 900, DCT: "RF", KCO: "00001", SFX: "001", AN8: 4001, CO: "00001", AG: -2500, AAP: -2500,
		CRCD: "GBP", MCU: "M30", PST: "A", ODOC: 1001, ODCT: "RI", OKCO: "00001", OSFX: "001"})
	customer(h.sim, 4002, "Late", "GBP", "00001")
	res := h.cycle(p)
	want := []string{"jde:jde-test:00001:customer:4002", "jde:jde-test:00001:invoice:1000/RI/001", "jde:jde-test:00001:refund:900/RF/001"}
	if got := keysOf(h.drain()); !slices.Equal(got, want) {
		t.Fatalf("published %v (%+v), want %v", got, res, want)
	}
	if res := h.cycle(p); res != (poller.Result{}) || len(h.drain()) != 0 {
		t.Fatalf("the rows of the watermark's second were published again: %+v", res)
	}

	// Stamped 20 s before the watermark, arriving after it was saved.
	h.clock.Advance(time.Minute)
	h.sim.AddInvoices(invoices("00001", 4001, 2000, 1)...)
	h.cycle(p)
	h.drain()
	h.clock.Advance(-20 * time.Second)
	h.sim.AddInvoices(invoices("00001", 4001, 1500, 1)...)
	_ = h.sim.UpdateInvoice(jdesim.DocKey{DOC: 1002, DCT: "RI", KCO: "00001", SFX: "001"}, func(i *jdesim.Invoice) { i.AAP = 500 })
	h.cycle(p)
	want = []string{"jde:jde-test:00001:invoice:1002/RI/001", "jde:jde-test:00001:invoice:1500/RI/001"}
	if got := keysOf(h.drain()); !slices.Equal(got, want) {
		t.Fatalf("late rows: published %v, want %v", got, want)
	}
	if wm := h.watermark("F03B11:00001"); wm.Key != "000000002000/RI/000000000001" {
		t.Fatalf("the watermark moved back to %+v", wm)
	}
	if res := h.cycle(p); res != (poller.Result{}) {
		t.Fatalf("late rows published again: %+v", res)
	}
}

// A bulk load of thousands of rows in one second is published once; the
// following cycles compare the re-read rows with poll_seen and publish
// nothing, and poll_seen forgets them once the watermark is an overlap
// window further on.
func TestBulkLoadInOneSecondIsPublishedOnce(t *testing.T) {
	h := newHarness(t, jdesim.Options{}, nil)
	customer(h.sim, 4001, "Acme", "GBP", "00001")
	h.sim.AddInvoices(invoices("00001", 4001, 100000, 3000)...)
	p := h.poller(func(c *poller.Config) { c.BatchSize = 500 })
	if res := h.cycle(p); res.Invoices != 3000 {
		t.Fatalf("first cycle = %+v", res)
	}
	h.drain()
	if n := h.seenRows("F03B11:00001"); n != 3000 {
		t.Fatalf("poll_seen holds %d rows of the bulk load's second, want 3000", n)
	}
	for range 2 {
		if res := h.cycle(p); res != (poller.Result{}) {
			t.Fatalf("a cycle after the bulk load published %+v", res)
		}
	}
	if msgs := h.drain(); len(msgs) != 0 {
		t.Fatalf("%d messages after the bulk load", len(msgs))
	}
	h.clock.Advance(poller.DefaultOverlap + time.Second)
	h.sim.AddInvoices(invoices("00001", 4001, 1, 1)...)
	if res := h.cycle(p); res.Invoices != 1 {
		t.Fatalf("cycle after the window = %+v", res)
	}
	if n := h.seenRows("F03B11:00001"); n != 1 {
		t.Fatalf("poll_seen holds %d rows, want only the one of the window", n)
	}
	// Out of the window, the bulk load is not read from AIS again either:
	// a cycle reads from the window's start, not from the day's.
	h.sim.ResetStats()
	if res := h.cycle(p); res != (poller.Result{}) {
		t.Fatalf("cycle = %+v", res)
	}
	if st := h.sim.Stats(); st.NextPages != 0 {
		t.Fatalf("a cycle paged %d times through AIS: the bulk load of the same day was read again", st.NextPages)
	}
}

// The window before a watermark just after midnight reaches into the day
// before: a late row stamped then is read, and so is the next day's.
func TestOverlapAcrossMidnight(t *testing.T) {
	h := newHarness(t, jdesim.Options{}, nil)
	customer(h.sim, 4001, "Acme", "GBP", "00001")
	h.clock.Advance(15*time.Hour - 20*time.Second) // 23:59:40
	h.sim.AddInvoices(invoices("00001", 4001, 1001, 1)...)
	h.clock.Advance(30 * time.Second) // 00:00:10
	h.sim.AddInvoices(invoices("00001", 4001, 1002, 1)...)
	p := h.poller(nil)
	h.cycle(p)
	h.drain()
	h.clock.Advance(-20 * time.Second) // 23:59:50, a late commit
	h.sim.AddInvoices(invoices("00001", 4001, 1003, 1)...)
	h.clock.Advance(time.Minute) // 00:00:50
	h.sim.AddInvoices(invoices("00001", 4001, 1004, 1)...)
	h.cycle(p)
	want := []string{"jde:jde-test:00001:invoice:1003/RI/001", "jde:jde-test:00001:invoice:1004/RI/001"}
	if got := keysOf(h.drain()); !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
}

func TestOverlapIsRangeChecked(t *testing.T) {
	h := newHarness(t, jdesim.Options{}, nil)
	for _, d := range []time.Duration{-time.Second, 2 * time.Hour} {
		cfg := h.config()
		cfg.Overlap = d
		if _, err := poller.New(cfg); err == nil || !strings.Contains(err.Error(), "overlap") {
			t.Errorf("overlap %s: err = %v", d, err)
		}
	}
	cfg := h.config()
	cfg.Overlap = 5 * time.Minute
	if _, err := poller.New(cfg); err != nil {
		t.Fatal(fmt.Errorf("overlap 5m: %w", err))
	}
}
