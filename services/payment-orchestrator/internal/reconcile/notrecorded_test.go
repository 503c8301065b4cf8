package reconcile_test

import (
	"context"
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
// chaos (issue #17): here the fulfilled event comes after the mandate
// events would have used up their deliveries at the first retry's short
// pause, and every mandate event is still applied and none is
// dead-lettered.
func TestMandateEventsOutwaitTheirBillingRequest(t *testing.T) {
	r := rig.New(t, rig.Options{
		Sim: gcsim.Options{Creditors: []gcsim.Creditor{{ID: gcsim.DefaultCreditorID, CustomPaymentReferences: true}}},
		GC:  map[string]any{"mandate_setup": "billing_request"},
	})
	const maxDeliver = 4
	r.Reconciler.NotRecordedWait = 100 * time.Millisecond
	// The orchestrator's consumers, the GoCardless one with few
	// deliveries and a back-off far longer than the first pause.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	fast := []time.Duration{100 * time.Millisecond}
	for _, c := range []struct {
		spec bus.ConsumerSpec
		h    bus.Handler
	}{
		{bus.ConsumerSpec{Stream: bus.StreamERP, Durable: "payment-orchestrator-erp", Workers: 2, MaxDeliver: 10, BackOff: fast, AckWait: 10 * time.Second}, r.Collector.Handle},
		{bus.ConsumerSpec{Stream: bus.StreamGC, Durable: "payment-orchestrator-gc", Workers: 4, MaxDeliver: maxDeliver,
			BackOff: []time.Duration{2 * time.Second}, AckWait: 10 * time.Second}, r.Reconciler.Handle},
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
	// The fulfilled event comes late: by then a retry every
	// NotRecordedWait would have used up the mandate events' deliveries.
	time.Sleep(time.Duration(3*maxDeliver) * r.Reconciler.NotRecordedWait)
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
