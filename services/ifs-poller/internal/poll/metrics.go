package poll

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metrics are the poller's instruments.
type Metrics struct {
	publishedC metric.Int64Counter
	rejectedC  metric.Int64Counter
	cyclesC    metric.Int64Counter
	durationH  metric.Float64Histogram
}

// NewMetrics creates the instruments on meter.
func NewMetrics(meter metric.Meter) (*Metrics, error) {
	var m Metrics
	var errs [4]error
	m.publishedC, errs[0] = meter.Int64Counter("mlc_ifs_published",
		metric.WithDescription("IFS events acknowledged by JetStream, by connection, company, kind and whether JetStream already had them"))
	m.rejectedC, errs[1] = meter.Int64Counter("mlc_ifs_rejected",
		metric.WithDescription("IFS rows not published but recorded as exceptions"))
	m.cyclesC, errs[2] = meter.Int64Counter("mlc_ifs_poll_cycles",
		metric.WithDescription("IFS poll cycles by connection and result"))
	m.durationH, errs[3] = meter.Float64Histogram("mlc_ifs_poll_seconds",
		metric.WithDescription("duration of an IFS poll cycle"), metric.WithUnit("s"))
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("ifs poll metrics: %w", err)
		}
	}
	return &m, nil
}

func (m *Metrics) published(ctx context.Context, connection, company, kind string, fresh, dup int) {
	attrs := []attribute.KeyValue{
		attribute.String("connection", connection), attribute.String("company", company), attribute.String("kind", kind),
	}
	if fresh > 0 {
		m.publishedC.Add(ctx, int64(fresh), metric.WithAttributes(append(attrs, attribute.Bool("duplicate", false))...))
	}
	if dup > 0 {
		m.publishedC.Add(ctx, int64(dup), metric.WithAttributes(append(attrs, attribute.Bool("duplicate", true))...))
	}
}

func (m *Metrics) rejected(ctx context.Context, connection, company, kind string, n int) {
	if n > 0 {
		m.rejectedC.Add(ctx, int64(n), metric.WithAttributes(
			attribute.String("connection", connection), attribute.String("company", company), attribute.String("kind", kind)))
	}
}

// Cycle records one finished cycle.
func (m *Metrics) Cycle(ctx context.Context, connection string, took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	attrs := metric.WithAttributes(attribute.String("connection", connection), attribute.String("result", result))
	m.cyclesC.Add(ctx, 1, attrs)
	m.durationH.Record(ctx, took.Seconds(), attrs)
}
