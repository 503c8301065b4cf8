package main

import (
	"fmt"
	"time"
)

// stallAfter is how long the book may go without an invoice reaching its
// end state before the demo names the invoices it is still waiting for.
const stallAfter = 30 * time.Second

// stallWatch notices a book that stopped moving and says what it waits
// for: a run that only ever printed "settled 1998/2000" left the reason to
// be dug out of the database after it was stopped (issue #17: the
// end-to-end benchmark's book waited 16 minutes on two refunds the JD
// Edwards poller had skipped).
type stallWatch struct {
	reached int
	since   time.Time // when reached last changed
	told    time.Time // when the stall was last reported
}

// check returns the lines to print for tally t seen at now: none while
// the book moves, else up to five of the invoices it waits for, once per
// stallAfter.
func (w *stallWatch) check(t tally, invoices int, now time.Time) []string {
	if w.since.IsZero() || t.reached != w.reached {
		w.reached, w.since, w.told = t.reached, now, time.Time{}
		return nil
	}
	if t.settled(invoices) || now.Sub(w.since) < stallAfter || now.Sub(w.told) < stallAfter {
		return nil
	}
	w.told = now
	lines := []string{fmt.Sprintf("the book has not moved for %v:", now.Sub(w.since).Round(time.Second))}
	for i, m := range t.missing {
		if i == 5 {
			lines = append(lines, fmt.Sprintf("  ... and %d more invoices", len(t.missing)-5))
			break
		}
		lines = append(lines, "  waiting on: "+m)
	}
	if t.unposted > 0 {
		lines = append(lines, fmt.Sprintf("  waiting on %d outcomes recorded but not posted to the ERP (pending or refused)", t.unposted))
	}
	if !t.payouts.settled() {
		lines = append(lines, "  waiting on "+t.payouts.String())
		for i, p := range t.payouts.problems {
			if i == 5 {
				lines = append(lines, fmt.Sprintf("  ... and %d more payout problems", len(t.payouts.problems)-5))
				break
			}
			lines = append(lines, "  payout: "+p)
		}
	}
	if t.deadLetters != t.deadLetterExceptions {
		lines = append(lines, "  waiting on the orchestrator to raise every dead letter as an exception: "+t.deadLetterLine())
	}
	return lines
}
