package poller

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metrics are the poller's instruments: what was published, what was
// rejected, how cycles went, and the poll lag, the age of the newest data
// the poller has fully published (time since the start of the last
// successful cycle of each connection). A nil *Metrics records nothing.
type Metrics struct {
	publishedCount metric.Int64Counter
	rejectedCount  metric.Int64Counter
	cycles         metric.Int64Counter
	duration       metric.Float64Histogram

	mu          sync.Mutex
	lastSuccess map[string]time.Time
	now         func() time.Time
}

// NewMetrics registers the instruments with the global meter provider.
func NewMetrics() (*Metrics, error) {
	meter := otel.Meter("github.com/ml-connector/ml-connector/services/jde-poller")
	m := &Metrics{lastSuccess: map[string]time.Time{}, now: time.Now}
	var errs [5]error
	m.publishedCount, errs[0] = meter.Int64Counter("mlc_jde_published",
		metric.WithDescription("JDE events published and acknowledged by JetStream, by connection, company, kind and duplicate"))
	m.rejectedCount, errs[1] = meter.Int64Counter("mlc_jde_rejected",
		metric.WithDescription("JDE rows recorded as exceptions instead of published, by connection and kind"))
	m.cycles, errs[2] = meter.Int64Counter("mlc_jde_poll_cycles",
		metric.WithDescription("JDE poll cycles by connection and result"))
	m.duration, errs[3] = meter.Float64Histogram("mlc_jde_poll_cycle_seconds",
		metric.WithDescription("duration of a JDE poll cycle"), metric.WithUnit("s"))
	_, errs[4] = meter.Float64ObservableGauge("mlc_jde_poll_lag_seconds",
		metric.WithDescription("seconds since the start of the last successful poll cycle, by connection"),
		metric.WithUnit("s"),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			now := m.now()
			for conn, at := range m.lastSuccess {
				o.Observe(now.Sub(at).Seconds(), metric.WithAttributes(attribute.String("connection", conn)))
			}
			return nil
		}))
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) published(ctx context.Context, conn, company, kind string, duplicate bool) {
	if m == nil {
		return
	}
	m.publishedCount.Add(ctx, 1, metric.WithAttributes(attribute.String("connection", conn),
		attribute.String("company", company), attribute.String("kind", kind), attribute.Bool("duplicate", duplicate)))
}

func (m *Metrics) rejected(ctx context.Context, conn, kind string) {
	if m == nil {
		return
	}
	m.rejectedCount.Add(ctx, 1, metric.WithAttributes(attribute.String("connection", conn), attribute.String("kind", kind)))
}

func (m *Metrics) cycle(ctx context.Context, conn string, began, ended time.Time, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	} else {
		m.mu.Lock()
		m.lastSuccess[conn] = began
		m.mu.Unlock()
	}
	attrs := metric.WithAttributes(attribute.String("connection", conn), attribute.String("result", result))
	m.cycles.Add(ctx, 1, attrs)
	m.duration.Record(ctx, ended.Sub(began).Seconds(), attrs)
}

// Forget stops reporting the lag of a connection this replica no longer
// polls.
func (m *Metrics) Forget(conn string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.lastSuccess, conn)
}
