package reconcile_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/deadletter"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
)

// TestMandateEventsOutwaitTheirBillingRequest: a billing request's mandate
// events that arrive before its fulfilled event (whose webhook was lost, or
// whose handler is being retried while GoCardless answers 429) wait for it
// as long as the consumer retries any message, not MAX_DELIVER short
// pauses. With a fixed pause they were dead-lettered under the demo's
// chaos (issue #17): here the fulfilled event is published only once every
// mandate event has been delivered maxDeliver-2 times (by then, at the
// first retry's short pause, each would be dead-lettered within two more
// pauses), and every mandate event is still applied and none is
// dead-lettered.
func TestMandateEventsOutwaitTheirBillingRequest(t *testing.T) {
	r := rig.New(t, rig.Options{
		Sim: gcsim.Options{Creditors: []gcsim.Creditor{{ID: gcsim.DefaultCreditorID, CustomPaymentReferences: true}}},
		GC:  map[string]any{"mandate_setup": "billing_request"},
	})
	const maxDeliver = 5
	r.Reconciler.NotRecordedWait = 100 * time.Millisecond
	// The orchestrator's consumers, the GoCardless one with few
	// deliveries and a back-off far longer than the first pause.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	// The deliveries each mandate event has had, by stream sequence: what
	// the test waits on instead of a pause of its own.
	var mu sync.Mutex
	delivered := map[uint64]uint64{}
	handle := func(ctx context.Context, d *bus.Delivery) error {
		err := r.Reconciler.Handle(ctx, d)
		if strings.HasPrefix(d.Subject, "mlc.gc.mandates.") {
			mu.Lock()
			delivered[d.StreamSeq] = max(delivered[d.StreamSeq], d.Deliveries)
			mu.Unlock()
		}
		return err
	}
	fast := []time.Duration{100 * time.Millisecond}
	for _, c := range []struct {
		spec bus.ConsumerSpec
		h    bus.Handler
	}{
		{bus.ConsumerSpec{Stream: bus.StreamERP, Durable: "payment-orchestrator-erp", Workers: 2, MaxDeliver: 10, BackOff: fast, AckWait: 10 * time.Second}, r.Collector.Handle},
		{bus.ConsumerSpec{Stream: bus.StreamGC, Durable: "payment-orchestrator-gc", Workers: 4, MaxDeliver: maxDeliver,
			BackOff: []time.Duration{2 * time.Second}, AckWait: 10 * time.Second}, handle},
		{bus.ConsumerSpec{Stream: bus.StreamDLQ, Durable: "payment-orchestrator-dlq", BackOff: fast}, deadletter.Handler{Ledger: r.Ledger}.Handle},
	} {
		wg.Go(func() {
			if err := r.Bus.Consume(ctx, c.spec, c.h); err != nil {
				t.Errorf("consumer %s: %v", c.spec.Durable, err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	r.Publish(rig.Customer("C1"))
	var flow string
	r.Eventually(20*time.Second, "billing request flow", func() bool {
		return r.DB.QueryRow(context.Background(), `SELECT flow_id FROM mandate_requests WHERE state = 'awaiting_payer' AND flow_id IS NOT NULL`).Scan(&flow) == nil
	})
	br, err := r.Sim.CompleteFlow(flow, gcsim.Payer{})
	if err != nil {
		t.Fatal(err)
	}
	r.Sim.Advance(3 * 24 * time.Hour) // the mandate is submitted and becomes active
	var mandateEvents, rest []gocardless.Event
	for _, ev := range allEvents(t, r) {
		if ev.ResourceType == "mandates" {
			mandateEvents = append(mandateEvents, ev)
		} else {
			rest = append(rest, ev)
		}
	}
	if len(mandateEvents) < 2 {
		t.Fatalf("%d mandate events, want its creation and more", len(mandateEvents))
	}
	publishEvents(t, r, mandateEvents)
	// The fulfilled event comes late: once every mandate event has failed
	// maxDeliver-2 times. A retry every NotRecordedWait would use up the
	// last two deliveries in two such pauses, before it can be applied;
	// the consumer's back-off leaves it two of its own.
	r.Eventually(30*time.Second, "mandate events retried", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, d := range delivered {
			if d >= maxDeliver-2 {
				n++
			}
		}
		return n == len(mandateEvents)
	})
	if n := r.Count(`SELECT count(*) FROM processed_events WHERE event_id = ANY($1)`, eventIDs(mandateEvents)); n != 0 {
		t.Fatalf("%d mandate events applied before their billing request was fulfilled", n)
	}
	publishEvents(t, r, rest)

	mandate := r.Sim.Mandates()[0]
	r.Eventually(20*time.Second, "mandate events applied", func() bool {
		var status string
		err := r.DB.QueryRow(context.Background(), `SELECT mandate_status FROM customer_links WHERE gc_mandate_id = $1`,
			br.Links.MandateRequestMandate).Scan(&status)
		return err == nil && status == mandate.Status &&
			r.Count(`SELECT count(*) FROM processed_events WHERE event_id = ANY($1)`, eventIDs(mandateEvents)) == len(mandateEvents)
	})
	r.Drain()
	if n := r.Count(`SELECT count(*) FROM exceptions`); n != 0 {
		t.Errorf("%d exceptions (dead letters) for mandate events that only had to wait", n)
	}
}

func eventIDs(evs []gocardless.Event) []string {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	return ids
}
