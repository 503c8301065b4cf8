package poller_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	"github.com/ml-connector/ml-connector/services/jde-poller/internal/poller"
)

func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	t.Cleanup(func() { otel.SetMeterProvider(prev) })
	metrics, err := poller.NewMetrics()
	if err != nil {
		t.Fatal(err)
	}

	h := newHarness(t, jdesim.Options{}, nil)
	customer(h.sim, 4001, "Acme", "GBP", "00001")
	bad := invoices("00001", 4001, 9, 1)[0]
	bad = storedAsGiven(bad, "XXX")
	h.sim.AddInvoices(append(invoices("00001", 4001, 1, 3), bad)...)
	p := h.poller(func(c *poller.Config) { c.Metrics = metrics })
	h.cycle(p)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{}
	var lag []float64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					kind, _ := dp.Attributes.Value(attribute.Key("kind"))
					result, _ := dp.Attributes.Value(attribute.Key("result"))
					sums[m.Name+"/"+kind.AsString()+result.AsString()] += dp.Value
				}
			case metricdata.Gauge[float64]:
				if m.Name == "mlc_jde_poll_lag_seconds" {
					for _, dp := range data.DataPoints {
						if conn, _ := dp.Attributes.Value("connection"); conn.AsString() == "jde-test" {
							lag = append(lag, dp.Value)
						}
					}
				}
			}
		}
	}
	want := map[string]int64{
		"mlc_jde_published/invoice":  3,
		"mlc_jde_published/customer": 1,
		"mlc_jde_rejected/invoice":   1,
		"mlc_jde_poll_cycles/ok":     1,
	}
	for k, v := range want {
		if sums[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, sums[k], v, sums)
		}
	}
	if len(lag) != 1 || lag[0] < 0 {
		t.Fatalf("poll lag = %v", lag)
	}
}
