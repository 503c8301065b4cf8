package bus_test

import (
	"fmt"
	"testing"

	"github.com/ml-connector/ml-connector/platform/bus"
)

// BenchmarkPublish measures one acknowledged publish at a time, as a poller
// does per ERP record, to an embedded file-storage JetStream.
func BenchmarkPublish(b *testing.B) {
	bb, _ := newBusB(b)
	payload := make([]byte, 1024)
	i := 0
	for b.Loop() {
		i++
		if _, err := bb.Publish(b.Context(), bus.Msg{Subject: "mlc.gc.payments.confirmed", ID: fmt.Sprint("EV", i), Data: payload}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkPublishBatch measures a 250-message batch (GoCardless's largest
// webhook) published asynchronously and awaited as a whole.
func BenchmarkPublishBatch(b *testing.B) {
	bb, _ := newBusB(b)
	payload := make([]byte, 1024)
	batch := make([]bus.Msg, 250)
	n := 0
	for b.Loop() {
		for j := range batch {
			n++
			batch[j] = bus.Msg{Subject: "mlc.gc.payments.confirmed", ID: fmt.Sprint("EV", n), Data: payload}
		}
		if _, err := bb.PublishBatch(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}
