package telemetry

import (
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// NATSCarrier adapts NATS message headers to the OpenTelemetry propagation
// API. NATS header keys are case-sensitive, unlike HTTP's, so Get falls back
// to a case-insensitive match: a publisher in another language may well write
// "traceparent" where Go's http.Header would write "Traceparent".
type NATSCarrier nats.Header

var _ propagation.TextMapCarrier = NATSCarrier(nil)

// Get returns the first value of key.
func (c NATSCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range c {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// Set replaces the values of key; propagators always use lowercase keys.
func (c NATSCarrier) Set(key, value string) { c[key] = []string{value} }

// Keys lists the header keys.
func (c NATSCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
