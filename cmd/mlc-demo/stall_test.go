package main

import (
	"strings"
	"testing"
	"time"
)

func TestStallWatchNamesWhatTheBookWaitsFor(t *testing.T) {
	var w stallWatch
	at := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	moving := tally{reached: 10, missing: []string{"a", "b"}}
	if got := w.check(moving, 12, at); got != nil {
		t.Fatalf("first look: %q", got)
	}
	if got := w.check(moving, 12, at.Add(stallAfter-time.Second)); got != nil {
		t.Fatalf("reported before %v without progress: %q", stallAfter, got)
	}
	got := w.check(moving, 12, at.Add(stallAfter))
	if len(got) != 3 || !strings.Contains(got[0], "not moved for 30s") || got[1] != "  waiting on: a" || got[2] != "  waiting on: b" {
		t.Fatalf("stall report: %q", got)
	}
	if got := w.check(moving, 12, at.Add(stallAfter+time.Second)); got != nil {
		t.Fatalf("reported again at once: %q", got)
	}
	if got := w.check(moving, 12, at.Add(2*stallAfter)); len(got) == 0 {
		t.Fatal("not reported again after another stall period")
	}
	// Progress resets the watch.
	if got := w.check(tally{reached: 11, missing: []string{"b"}}, 12, at.Add(3*stallAfter)); got != nil {
		t.Fatalf("reported on progress: %q", got)
	}
	if got := w.check(tally{reached: 11, missing: []string{"b"}}, 12, at.Add(4*stallAfter-time.Second)); got != nil {
		t.Fatalf("reported before a full period after progress: %q", got)
	}
	// A settled book is never a stall, however long it stays settled.
	var done stallWatch
	done.check(tally{reached: 12}, 12, at)
	if got := done.check(tally{reached: 12}, 12, at.Add(time.Hour)); got != nil {
		t.Fatalf("settled book reported: %q", got)
	}
	// Outcomes not posted keep a book whose invoices all reached their state unsettled.
	var posting stallWatch
	posting.check(tally{reached: 12, unposted: 3}, 12, at)
	if got := posting.check(tally{reached: 12, unposted: 3}, 12, at.Add(stallAfter)); len(got) == 0 || !strings.Contains(got[len(got)-1], "waiting on 3 outcomes") {
		t.Fatalf("unposted outcomes not reported: %q", got)
	}
	// So does a payout GoCardless paid that the ledger has not stored.
	var payouts stallWatch
	waiting := tally{reached: 12, payouts: payoutTally{paid: 1, byState: map[string]int{}, problems: []string{"payout PO1 of 100 GBP paid by GoCardless is not stored"}}}
	payouts.check(waiting, 12, at)
	got = payouts.check(waiting, 12, at.Add(stallAfter))
	if len(got) < 3 || !strings.Contains(got[1], "payouts: 1 paid by GoCardless, 0 stored") || !strings.Contains(got[2], "PO1") {
		t.Fatalf("unreconciled payout not reported: %q", got)
	}
}
