package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/ml-connector/ml-connector/platform/telemetry"
)

// ConsumerSpec declares a durable pull consumer. Several replicas of a
// service bound to the same Durable share its messages.
type ConsumerSpec struct {
	Stream   string
	Durable  string
	Subjects []string // filter subjects; empty means the whole stream
	// AckWait is how long a delivery may stay unacknowledged before the
	// server redelivers it (a crashed or hung handler).
	AckWait time.Duration
	// MaxDeliver bounds deliveries; the last failed one is dead-lettered.
	MaxDeliver int
	// BackOff is the delay before redelivery after the n-th failed delivery
	// (the last entry repeats).
	BackOff       []time.Duration
	MaxAckPending int
	// Workers is the number of messages handled concurrently by this process.
	Workers int
}

func (s ConsumerSpec) withDefaults() ConsumerSpec {
	if s.AckWait == 0 {
		s.AckWait = 30 * time.Second
	}
	if s.MaxDeliver == 0 {
		s.MaxDeliver = 10
	}
	if len(s.BackOff) == 0 {
		s.BackOff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}
	}
	if s.MaxAckPending == 0 {
		s.MaxAckPending = 1000
	}
	if s.Workers == 0 {
		s.Workers = 1
	}
	return s
}

func (s ConsumerSpec) config() jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:        s.Durable,
		AckPolicy:      jetstream.AckExplicitPolicy,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckWait:        s.AckWait,
		MaxDeliver:     s.MaxDeliver,
		MaxAckPending:  s.MaxAckPending,
		FilterSubjects: s.Subjects,
	}
	// BackOff is applied by the consume loop (NakWithDelay), not declared
	// on the server: nats-server dates a delayed NAK relative to AckWait but
	// expires it against the BackOff entry of its delivery count, so with
	// both set a NAK delay shorter than AckWait is not honoured. A delivery
	// nobody answers is redelivered after AckWait.
	return cfg
}

// retryDelay is the delay before the next delivery after delivery n failed.
func (s ConsumerSpec) retryDelay(n uint64) time.Duration {
	i := int(n) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s.BackOff) {
		i = len(s.BackOff) - 1
	}
	return s.BackOff[i]
}

// EnsureConsumer creates or updates the durable consumer of spec, waiting
// out a NATS restart (Declare).
func (b *Bus) EnsureConsumer(ctx context.Context, spec ConsumerSpec) (jetstream.Consumer, error) {
	spec = spec.withDefaults()
	if spec.Stream == "" || spec.Durable == "" {
		return nil, errors.New("ensure consumer: stream and durable are required")
	}
	var c jetstream.Consumer
	err := b.Declare(ctx, "consumer "+spec.Stream+"/"+spec.Durable, func(ctx context.Context) error {
		var err error
		c, err = b.js.CreateOrUpdateConsumer(ctx, spec.Stream, spec.config())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s/%s: %w", spec.Stream, spec.Durable, err)
	}
	return c, nil
}

// Delivery is one delivery of a message to a handler.
type Delivery struct {
	Subject    string
	ID         string // Nats-Msg-Id
	Data       []byte
	Header     nats.Header
	Stream     string
	StreamSeq  uint64
	Deliveries uint64 // 1 on first delivery
	Published  time.Time
}

// Handler handles one delivery. Returning nil acknowledges it. Returning an
// error retries it later: after the delay of RetryAfter, or else after the
// consumer's BackOff. An error made with Poison dead-letters it at once.
// Handlers must be idempotent: any message may be delivered more than once.
type Handler func(ctx context.Context, d *Delivery) error

type retryError struct {
	delay time.Duration
	err   error
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// RetryAfter asks for redelivery after delay.
func RetryAfter(delay time.Duration, err error) error { return &retryError{delay: delay, err: err} }

// RetryDelay is the delay err asks for through RetryAfter, if it does.
func RetryDelay(err error) (time.Duration, bool) {
	if re := (*retryError)(nil); errors.As(err, &re) {
		return re.delay, true
	}
	return 0, false
}

type poisonError struct{ err error }

func (e *poisonError) Error() string { return "poison: " + e.err.Error() }
func (e *poisonError) Unwrap() error { return e.err }

// Poison marks a message that can never succeed (malformed, unknown schema
// version); it goes to the dead-letter stream with err as the reason.
func Poison(err error) error { return &poisonError{err: err} }

// IsPoison reports whether err was made by Poison.
func IsPoison(err error) bool {
	var p *poisonError
	return errors.As(err, &p)
}

// Consume ensures the consumer of spec and handles its messages until ctx
// ends, then drains: deliveries already handed to a handler finish and are
// acknowledged before Consume returns.
func (b *Bus) Consume(ctx context.Context, spec ConsumerSpec, h Handler) error {
	spec = spec.withDefaults()
	cons, err := b.EnsureConsumer(ctx, spec)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	contexts := make([]jetstream.ConsumeContext, 0, spec.Workers)
	for range spec.Workers {
		cc, err := cons.Consume(func(m jetstream.Msg) {
			wg.Add(1)
			defer wg.Done()
			b.handle(ctx, spec, h, m)
		}, jetstream.PullMaxMessages(1), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) || b.nc.IsConnected() {
				b.log.WarnContext(ctx, "consume error", "consumer", spec.Durable, "error", err)
			}
		}))
		if err != nil {
			for _, c := range contexts {
				c.Stop()
			}
			return fmt.Errorf("consume %s/%s: %w", spec.Stream, spec.Durable, err)
		}
		contexts = append(contexts, cc)
	}
	<-ctx.Done()
	for _, cc := range contexts {
		cc.Drain()
	}
	for _, cc := range contexts {
		<-cc.Closed()
	}
	wg.Wait()
	return nil
}

func (b *Bus) handle(ctx context.Context, spec ConsumerSpec, h Handler, m jetstream.Msg) {
	// Shutdown must not cut a handler off mid-way (it may be between a
	// GoCardless call and the row that records it), so the handler's context
	// outlives ctx and is bounded by AckWait instead.
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), spec.AckWait)
	defer cancel()

	meta, err := m.Metadata()
	if err != nil {
		b.log.ErrorContext(ctx, "message without jetstream metadata", "subject", m.Subject(), "error", err)
		_ = m.Term()
		return
	}
	d := &Delivery{
		Subject:    m.Subject(),
		ID:         m.Headers().Get(HeaderMsgID),
		Data:       m.Data(),
		Header:     m.Headers(),
		Stream:     meta.Stream,
		StreamSeq:  meta.Sequence.Stream,
		Deliveries: meta.NumDelivered,
		Published:  meta.Timestamp,
	}
	parent := otel.GetTextMapPropagator().Extract(hctx, telemetry.NATSCarrier(d.Header))
	hctx, span := b.tracer.Start(parent, "process "+d.Subject,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", d.Subject),
			attribute.String("messaging.consumer.group.name", spec.Durable),
			attribute.String("messaging.message.id", d.ID),
			attribute.Int64("messaging.nats.delivery_count", int64(d.Deliveries)),
		))
	defer span.End()

	start := time.Now()
	herr := safeHandle(hctx, h, d)
	result := b.settle(hctx, spec, m, d, herr)
	if herr != nil {
		span.RecordError(herr)
		span.SetStatus(codes.Error, herr.Error())
	}
	attrs := metric.WithAttributes(attribute.String("consumer", spec.Durable), attribute.String("result", result))
	b.metrics.handled.Add(hctx, 1, attrs)
	b.metrics.duration.Record(hctx, time.Since(start).Seconds(), attrs)
}

// safeHandle turns a handler panic into an error so one bad message cannot
// take the consumer down; the message is retried and, if it keeps
// panicking, dead-lettered like any other failure.
func safeHandle(ctx context.Context, h Handler, d *Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return h(ctx, d)
}

// settle acknowledges, retries or dead-letters the delivery according to the
// handler's result, and names what it did.
func (b *Bus) settle(ctx context.Context, spec ConsumerSpec, m jetstream.Msg, d *Delivery, herr error) string {
	log := b.log.With("consumer", spec.Durable, "subject", d.Subject, "msg_id", d.ID, "stream_seq", d.StreamSeq, "deliveries", d.Deliveries)
	switch {
	case herr == nil:
		// A plain ack, not one confirmed by the server: handlers are
		// idempotent, so an ack lost on the way only means a redelivery
		// after AckWait, and waiting for every confirmation cost the
		// orchestrator a round trip per message.
		if err := m.Ack(); err != nil {
			log.WarnContext(ctx, "ack failed", "error", err)
			return "ack_failed"
		}
		return "ack"
	case IsPoison(herr):
		return b.deadLetterDelivery(ctx, spec, m, d, herr.Error(), "poison", log)
	case d.Deliveries >= uint64(spec.MaxDeliver):
		reason := fmt.Sprintf("exhausted %d deliveries: %v", d.Deliveries, herr)
		return b.deadLetterDelivery(ctx, spec, m, d, reason, "exhausted", log)
	default:
		delay, asked := RetryDelay(herr)
		if !asked {
			delay = spec.retryDelay(d.Deliveries)
		}
		log.WarnContext(ctx, "handler failed, will retry", "error", herr, "retry_in", delay.String())
		if err := m.NakWithDelay(delay); err != nil {
			log.WarnContext(ctx, "nak failed", "error", err)
		}
		return "retry"
	}
}

func (b *Bus) deadLetterDelivery(ctx context.Context, spec ConsumerSpec, m jetstream.Msg, d *Delivery, reason, kind string, log *slog.Logger) string {
	err := b.deadLetter(ctx, deadLetter{
		stream:     d.Stream,
		consumer:   spec.Durable,
		subject:    d.Subject,
		seq:        d.StreamSeq,
		deliveries: d.Deliveries,
		data:       d.Data,
		header:     d.Header,
		reason:     reason,
		kind:       kind,
	})
	if err != nil {
		// The copy is not durable, so the original must stay: retry later.
		log.ErrorContext(ctx, "dead-letter publish failed, keeping message", "error", err, "reason", reason)
		_ = m.NakWithDelay(spec.retryDelay(d.Deliveries))
		return "dead_letter_failed"
	}
	log.ErrorContext(ctx, "message dead-lettered", "reason", reason)
	if err := m.TermWithReason(kind); err != nil {
		log.ErrorContext(ctx, "term after dead-letter failed", "error", err)
	}
	return "dead_letter"
}

type deadLetter struct {
	stream, consumer, subject string
	seq, deliveries           uint64
	data                      []byte
	header                    nats.Header
	reason, kind              string
}

// DeadLetterSubject is where messages of stream given up by consumer go.
func DeadLetterSubject(stream, consumer string) string {
	return "mlc.dlq." + stream + "." + consumer
}

// deadLetter copies a message to MLC_DLQ. The id is derived from the
// original's stream position, so the handler path and the advisory mover
// can both copy the same message without creating two dead letters.
func (b *Bus) deadLetter(ctx context.Context, dl deadLetter) error {
	hdr := nats.Header{}
	for k, v := range dl.header {
		if k == HeaderMsgID {
			continue
		}
		hdr[k] = append([]string(nil), v...)
	}
	hdr.Set(HeaderDLQReason, HeaderText(dl.reason, maxReasonLen))
	hdr.Set(HeaderDLQStream, dl.stream)
	hdr.Set(HeaderDLQConsumer, dl.consumer)
	hdr.Set(HeaderDLQSubject, dl.subject)
	hdr.Set(HeaderDLQSequence, strconv.FormatUint(dl.seq, 10))
	hdr.Set(HeaderDLQDeliveries, strconv.FormatUint(dl.deliveries, 10))
	if id := dl.header.Get(HeaderMsgID); id != "" {
		hdr.Set(HeaderDLQOriginalID, id)
	}
	_, err := b.Publish(ctx, Msg{
		Subject: DeadLetterSubject(dl.stream, dl.consumer),
		ID:      fmt.Sprintf("dlq:%s:%d", dl.stream, dl.seq),
		Data:    dl.data,
		Header:  hdr,
	})
	if err == nil {
		b.metrics.deadLetter.Add(ctx, 1, metric.WithAttributes(attribute.String("stream", dl.stream), attribute.String("kind", dl.kind)))
	}
	return err
}
