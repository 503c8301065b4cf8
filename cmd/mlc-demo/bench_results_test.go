package main

import (
	"testing"
	"time"
)

// A confirmed event overtaken by its payment's paid_out reaches the ERP
// under the paid_out event's id: the latency summary counts it, timed to
// that posting, and an event posted under no id is named, not dropped.
func TestLatencyResultsCountEveryEvent(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	l := newLatencies()
	for id, m := range map[string]string{"EV1": "PM1/confirmed", "EV2": "PM1/paid_out", "EV3": "PM2/confirmed", "EV4": "PM3/failed"} {
		l.eventAt[id], l.milestoneOf[id] = t0, m
	}
	l.eventAt["EV2"] = t0.Add(time.Second)
	l.postedAt["EV2"] = t0.Add(1500 * time.Millisecond)
	l.postedAt["EV2:PAYMENT_OUTCOME_KIND_CONFIRMED"] = t0.Add(1400 * time.Millisecond)
	l.postedAt["EV3"] = t0.Add(300 * time.Millisecond)

	r := l.results()
	if r.events != 4 || r.overtaken != 1 || len(r.unposted) != 1 || r.unposted[0] != "EV4 (PM3/failed)" {
		t.Fatalf("events %d, overtaken %d, unposted %v; want 4, 1, [EV4 (PM3/failed)]", r.events, r.overtaken, r.unposted)
	}
	got := map[time.Duration]bool{}
	for _, d := range r.toERP() {
		got[d] = true
	}
	for _, want := range []time.Duration{1400 * time.Millisecond, 500 * time.Millisecond, 300 * time.Millisecond} {
		if !got[want] || len(r.toERP()) != 3 {
			t.Errorf("event to ERP %v; want 1.4 s (EV1, overtaken), 500 ms (EV2) and 300 ms (EV3)", r.toERP())
			break
		}
	}
}
