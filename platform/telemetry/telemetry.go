// Package telemetry sets up OpenTelemetry for a service: a tracer provider
// (exporting over OTLP only when the standard OTEL_* variables ask for it),
// a meter provider read by a Prometheus /metrics endpoint (and OTLP when
// configured), W3C trace-context propagation, and a carrier that moves trace
// context through NATS message headers.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// Telemetry owns the providers of one process.
type Telemetry struct {
	Tracers  *sdktrace.TracerProvider
	Meters   *sdkmetric.MeterProvider
	registry *prometheus.Registry
}

// Options tune Setup. The zero value is what services use.
type Options struct {
	// Environ is consulted for the OTEL_* variables; nil means os.LookupEnv.
	Environ func(string) (string, bool)
	// SpanProcessors are added to the tracer provider, e.g. an in-memory
	// recorder in tests.
	SpanProcessors []sdktrace.SpanProcessor
}

// Setup builds the providers for service and installs them, with the W3C
// propagator, as the process-wide OpenTelemetry globals.
//
// Traces are always recorded (so logs carry trace ids and context crosses
// NATS and gRPC), but leave the process only when OTEL_EXPORTER_OTLP_ENDPOINT
// or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set and OTEL_SDK_DISABLED is not
// "true". Metrics are always served on the Prometheus handler.
func Setup(ctx context.Context, service string, opts Options) (*Telemetry, error) {
	lookup := opts.Environ
	if lookup == nil {
		lookup = os.LookupEnv
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	promReader, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return nil, fmt.Errorf("telemetry prometheus exporter: %w", err)
	}
	meterOpts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promReader)}
	traceOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	for _, p := range opts.SpanProcessors {
		traceOpts = append(traceOpts, sdktrace.WithSpanProcessor(p))
	}

	if otlpTraces(lookup) {
		exp, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry otlp traces: %w", err)
		}
		traceOpts = append(traceOpts, sdktrace.WithBatcher(exp))
	}
	if otlpMetrics(lookup) {
		exp, err := otlpmetricgrpc.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry otlp metrics: %w", err)
		}
		meterOpts = append(meterOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}

	t := &Telemetry{
		Tracers:  sdktrace.NewTracerProvider(traceOpts...),
		Meters:   sdkmetric.NewMeterProvider(meterOpts...),
		registry: registry,
	}
	otel.SetTracerProvider(t.Tracers)
	otel.SetMeterProvider(t.Meters)
	otel.SetTextMapPropagator(Propagator())
	return t, nil
}

// Propagator is the W3C trace-context and baggage propagator used on every hop.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// MetricsHandler serves the Prometheus exposition of every OpenTelemetry
// instrument of the process plus Go runtime and process metrics.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{Registry: t.registry})
}

// Shutdown flushes and stops both providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return errors.Join(t.Tracers.Shutdown(ctx), t.Meters.Shutdown(ctx))
}

func otlpTraces(lookup func(string) (string, bool)) bool {
	return !sdkDisabled(lookup) && (set(lookup, "OTEL_EXPORTER_OTLP_ENDPOINT") || set(lookup, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) &&
		!none(lookup, "OTEL_TRACES_EXPORTER")
}

func otlpMetrics(lookup func(string) (string, bool)) bool {
	return !sdkDisabled(lookup) && (set(lookup, "OTEL_EXPORTER_OTLP_ENDPOINT") || set(lookup, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")) &&
		!none(lookup, "OTEL_METRICS_EXPORTER")
}

func sdkDisabled(lookup func(string) (string, bool)) bool {
	v, _ := lookup("OTEL_SDK_DISABLED")
	return strings.EqualFold(strings.TrimSpace(v), "true")
}

func set(lookup func(string) (string, bool), name string) bool {
	v, ok := lookup(name)
	return ok && strings.TrimSpace(v) != ""
}

func none(lookup func(string) (string, bool), name string) bool {
	v, _ := lookup(name)
	return strings.EqualFold(strings.TrimSpace(v), "none")
}
