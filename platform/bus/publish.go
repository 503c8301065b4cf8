package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/ml-connector/ml-connector/platform/telemetry"
)

// Msg is a message to publish. ID becomes the Nats-Msg-Id, so publishing the
// same ID again within the duplicate window stores nothing new; consumers
// de-duplicate again in Postgres for redeliveries outside the window.
type Msg struct {
	Subject string
	ID      string
	Data    []byte
	Header  nats.Header
}

// Ack is JetStream's acknowledgement of a stored (or de-duplicated) message.
type Ack struct {
	Stream    string
	Sequence  uint64
	Duplicate bool
}

// ErrNoMsgID is returned for a message without an ID: every message on the
// bus must be idempotent to publish.
var ErrNoMsgID = errors.New("bus: message has no id")

// Publish stores m and waits for JetStream's acknowledgement. Only an
// acknowledged message is durable; callers advance watermarks or answer
// webhooks only after Publish returned without error.
func (b *Bus) Publish(ctx context.Context, m Msg) (Ack, error) {
	nm, span, err := b.prepare(ctx, m)
	if err != nil {
		return Ack{}, err
	}
	defer span.End()
	pa, err := b.js.PublishMsg(ctx, nm, jetstream.WithMsgID(m.ID))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return Ack{}, fmt.Errorf("publish %s: %w", m.Subject, err)
	}
	b.published(ctx, pa)
	return Ack{Stream: pa.Stream, Sequence: pa.Sequence, Duplicate: pa.Duplicate}, nil
}

// PublishBatch publishes every message asynchronously and waits until each
// is acknowledged. It returns the acks in order, or the first error after all
// outstanding publishes settled; a caller that gets an error must treat the
// whole batch as not durable and may safely publish it again (ids dedupe).
//
// The batch is one producer span whose context every message carries: a
// span per message would cost more than the publish itself for a
// 250-event webhook, and the consumers' spans still join the same trace.
func (b *Bus) PublishBatch(ctx context.Context, msgs []Msg) ([]Ack, error) {
	ctx, span := b.tracer.Start(ctx, "publish batch",
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.Int("messaging.batch.message_count", len(msgs)),
		))
	defer span.End()
	carrier := nats.Header{}
	otel.GetTextMapPropagator().Inject(ctx, telemetry.NATSCarrier(carrier))

	// Every message is checked before any is sent: one the server would
	// refuse, or answer by closing the connection, must cost the caller
	// this batch, not the connection every later batch needs.
	maxPayload := b.nc.MaxPayload()
	for _, m := range msgs {
		if m.ID == "" {
			err := fmt.Errorf("publish %.80s: %w", m.Subject, ErrNoMsgID)
			span.SetStatus(codes.Error, err.Error())
			return nil, err
		}
		if err := CheckMsg(m, maxPayload); err != nil {
			span.SetStatus(codes.Error, err.Error())
			return nil, fmt.Errorf("publish %.80s: %w", m.Subject, err)
		}
	}
	futures := make([]jetstream.PubAckFuture, len(msgs))
	var firstErr error
	for i, m := range msgs {
		f, err := b.js.PublishMsgAsync(natsMsg(m, carrier), jetstream.WithMsgID(m.ID))
		if err != nil {
			firstErr = fmt.Errorf("publish %s: %w", m.Subject, err)
			break
		}
		futures[i] = f
	}
	acks := make([]Ack, len(msgs))
	var stored, duplicates int64
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case pa := <-f.Ok():
			acks[i] = Ack{Stream: pa.Stream, Sequence: pa.Sequence, Duplicate: pa.Duplicate}
			if pa.Duplicate {
				duplicates++
			} else {
				stored++
			}
		case err := <-f.Err():
			if firstErr == nil {
				firstErr = fmt.Errorf("publish %s: %w", msgs[i].Subject, err)
			}
		case <-ctx.Done():
			if firstErr == nil {
				firstErr = fmt.Errorf("publish batch: %w", ctx.Err())
			}
		}
	}
	b.metrics.published.Add(ctx, stored, metric.WithAttributes(attribute.Bool("duplicate", false)))
	b.metrics.published.Add(ctx, duplicates, metric.WithAttributes(attribute.Bool("duplicate", true)))
	if firstErr != nil {
		span.SetStatus(codes.Error, firstErr.Error())
		return nil, firstErr
	}
	return acks, nil
}

// natsMsg builds the NATS message of m with its own copy of the headers
// and of the trace context in carrier (the publish options write into the
// header map, so maps must not be shared between messages).
func natsMsg(m Msg, carrier nats.Header) *nats.Msg {
	hdr := make(nats.Header, len(m.Header)+len(carrier)+1)
	for k, v := range m.Header {
		hdr[k] = append([]string(nil), v...)
	}
	for k, v := range carrier {
		hdr[k] = v
	}
	return &nats.Msg{Subject: m.Subject, Data: m.Data, Header: hdr}
}

// prepare builds the NATS message with a producer span whose context is
// injected into the headers, so the consumer's span continues the trace.
func (b *Bus) prepare(ctx context.Context, m Msg) (*nats.Msg, trace.Span, error) {
	if m.ID == "" {
		return nil, nil, fmt.Errorf("publish %.80s: %w", m.Subject, ErrNoMsgID)
	}
	if err := CheckMsg(m, b.nc.MaxPayload()); err != nil {
		return nil, nil, fmt.Errorf("publish %.80s: %w", m.Subject, err)
	}
	ctx, span := b.tracer.Start(ctx, "publish "+m.Subject,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", m.Subject),
			attribute.String("messaging.message.id", m.ID),
		))
	carrier := nats.Header{}
	otel.GetTextMapPropagator().Inject(ctx, telemetry.NATSCarrier(carrier))
	return natsMsg(m, carrier), span, nil
}

func (b *Bus) published(ctx context.Context, pa *jetstream.PubAck) {
	b.metrics.published.Add(ctx, 1, metric.WithAttributes(
		attribute.String("stream", pa.Stream),
		attribute.Bool("duplicate", pa.Duplicate),
	))
}
