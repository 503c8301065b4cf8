package auditkv_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// checkpointMetrics is what auditkv.Run reports, read through a meter
// provider of the test's own, installed for the test.
type checkpointMetrics struct{ reader *sdkmetric.ManualReader }

func recordMetrics(t *testing.T) checkpointMetrics {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	t.Cleanup(func() { otel.SetMeterProvider(prev) })
	return checkpointMetrics{reader}
}

// read returns the checkpoints taken by result, and the published times
// observed (one per running Run that has published).
func (c checkpointMetrics) read(t *testing.T) (results map[string]int64, published []int64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := c.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	results = map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				if m.Name == "mlc_audit_checkpoints" {
					for _, dp := range data.DataPoints {
						result, _ := dp.Attributes.Value("result")
						results[result.AsString()] += dp.Value
					}
				}
			case metricdata.Gauge[int64]:
				if m.Name == "mlc_audit_checkpoint_published_seconds" {
					for _, dp := range data.DataPoints {
						published = append(published, dp.Value)
					}
				}
			}
		}
	}
	return results, published
}
