// Package bus is ml-connector's plumbing over NATS JetStream: connecting
// with endless reconnect, declaring the streams and durable consumers the
// services share, publishing with de-duplication ids and trace context, and a
// consume loop in which a handler acks, retries after a delay, or marks a
// message as poison. Nothing is dropped: poison messages and messages that
// exhaust their deliveries are copied to the dead-letter stream MLC_DLQ with
// the reason before they leave their own stream's consumer.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/ml-connector/ml-connector/platform/retry"
)

// Stream names and the subjects they capture (DESIGN.md, "JetStream").
const (
	StreamERP = "MLC_ERP"
	StreamGC  = "MLC_GC"
	StreamDLQ = "MLC_DLQ"
	// StreamAdvisories keeps JetStream's max-deliveries advisories for our
	// streams, so a message whose last delivery was never acknowledged (its
	// consumer crashed or hung) is still moved to MLC_DLQ by whichever
	// replica runs the mover next, rather than depending on someone
	// listening at the moment the advisory is sent.
	StreamAdvisories = "MLC_ADVISORIES"

	SubjectsERP = "mlc.erp.>"
	SubjectsGC  = "mlc.gc.>"
	SubjectsDLQ = "mlc.dlq.>"
)

// Header names set by this package.
const (
	HeaderMsgID         = jetstream.MsgIDHeader // "Nats-Msg-Id"
	HeaderDLQReason     = "Mlc-Dlq-Reason"
	HeaderDLQStream     = "Mlc-Dlq-Stream"
	HeaderDLQConsumer   = "Mlc-Dlq-Consumer"
	HeaderDLQSubject    = "Mlc-Dlq-Subject"
	HeaderDLQSequence   = "Mlc-Dlq-Sequence"
	HeaderDLQDeliveries = "Mlc-Dlq-Deliveries"
	HeaderDLQOriginalID = "Mlc-Dlq-Original-Msg-Id"
	// HeaderDLQTruncated is set on a dead letter whose data had to be cut
	// to fit a message: the original size and SHA-256.
	HeaderDLQTruncated = "Mlc-Dlq-Truncated"
)

// Config says how the streams are laid out.
type Config struct {
	// Replicas of every stream: 1 in development, 3 in production.
	Replicas int
	// MaxAge bounds how long a message is kept (limits retention).
	MaxAge time.Duration
	// DuplicateWindow is the Nats-Msg-Id de-duplication window.
	DuplicateWindow time.Duration
}

// DefaultConfig suits a single-node development server.
func DefaultConfig() Config {
	return Config{Replicas: 1, MaxAge: 14 * 24 * time.Hour, DuplicateWindow: 10 * time.Minute}
}

// Streams returns the declarations of every stream the services share.
func (c Config) Streams() []jetstream.StreamConfig {
	stream := func(name, desc string, subjects ...string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    subjects,
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
			MaxAge:      c.MaxAge,
			Duplicates:  c.DuplicateWindow,
			Discard:     jetstream.DiscardOld,
		}
	}
	return []jetstream.StreamConfig{
		stream(StreamERP, "ERP changes: customers, invoices ready for collection, refunds", SubjectsERP),
		stream(StreamGC, "GoCardless events, one message per event", SubjectsGC),
		stream(StreamDLQ, "dead letters: poison or exhausted messages with their reason", SubjectsDLQ),
		stream(StreamAdvisories, "max-deliveries advisories of the MLC streams, feeding the dead-letter mover",
			advisorySubject(StreamERP), advisorySubject(StreamGC)),
	}
}

func advisorySubject(stream string) string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + stream + ".*"
}

// ConnectOption adds to what Connect sets up.
type ConnectOption func(*connectOptions)

type connectOptions struct {
	onClosed func()
	nats     []nats.Option
}

// UserPassword authenticates as user (its password is used only here).
func UserPassword(user, password string) ConnectOption {
	return func(o *connectOptions) { o.nats = append(o.nats, nats.UserInfo(user, password)) }
}

// RootCA requires TLS and a server certificate signed by the CA in file.
func RootCA(file string) ConnectOption {
	return func(o *connectOptions) { o.nats = append(o.nats, nats.RootCAs(file)) }
}

// OnClosed calls f when the connection is closed for good: by Close or
// Drain, or by the client itself after a protocol error it does not
// reconnect from (nats.go does that, for example, when the server rejects
// a control line as too long). A service watches for the latter to fail
// its liveness check rather than stay alive but useless.
func OnClosed(f func()) ConnectOption { return func(o *connectOptions) { o.onClosed = f } }

// Connect dials NATS and keeps reconnecting forever: a service must ride out a
// NATS restart, not exit. url may be a comma-separated list of servers.
func Connect(ctx context.Context, url, name string, log *slog.Logger, opts ...ConnectOption) (*nats.Conn, error) {
	var co connectOptions
	for _, o := range opts {
		o(&co)
	}
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.WarnContext(ctx, "nats connection closed", "error", err)
			}
			if co.onClosed != nil {
				co.onClosed()
			}
		}),
		nats.Name(name),
		nats.CustomInboxPrefix(InboxPrefix(name)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.WarnContext(ctx, "nats disconnected", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.InfoContext(ctx, "nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.WarnContext(ctx, "nats async error", "error", err)
		}),
	}, co.nats...)...)
	if err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	return nc, nil
}

// InboxPrefix is where the connection named name receives its replies
// (JetStream API answers, pulled messages, publish acknowledgements):
// _INBOX_<name>. With a prefix of its own per service, a NATS user may be
// allowed to subscribe to its own replies only (deploy/k8s accounts.conf)
// instead of to _INBOX.>, where it could read every other service's
// pulled messages in the account.
func InboxPrefix(name string) string { return "_INBOX_" + name }

// Bus publishes to and consumes from the MLC streams.
type Bus struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	cfg     Config
	log     *slog.Logger
	tracer  trace.Tracer
	metrics metrics
}

type metrics struct {
	published  metric.Int64Counter
	handled    metric.Int64Counter
	deadLetter metric.Int64Counter
	duration   metric.Float64Histogram
}

// New wraps a connection. It does not touch the server; call Ensure.
func New(nc *nats.Conn, cfg Config, log *slog.Logger) (*Bus, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	meter := otel.Meter("github.com/ml-connector/ml-connector/platform/bus")
	var m metrics
	var errs [4]error
	m.published, errs[0] = meter.Int64Counter("mlc_bus_published", metric.WithDescription("messages published and acknowledged by JetStream"))
	m.handled, errs[1] = meter.Int64Counter("mlc_bus_handled", metric.WithDescription("messages handled, by consumer and result"))
	m.deadLetter, errs[2] = meter.Int64Counter("mlc_bus_dead_lettered", metric.WithDescription("messages copied to MLC_DLQ, by stream and reason kind"))
	m.duration, errs[3] = meter.Float64Histogram("mlc_bus_handle_seconds", metric.WithDescription("handler duration"), metric.WithUnit("s"))
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("bus metrics: %w", err)
		}
	}
	return &Bus{
		nc:      nc,
		js:      js,
		cfg:     cfg,
		log:     log,
		tracer:  otel.Tracer("github.com/ml-connector/ml-connector/platform/bus"),
		metrics: m,
	}, nil
}

// JetStream exposes the underlying JetStream context for what this package
// does not wrap (stream info in tests, direct gets for operators).
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Conn is the underlying NATS connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// MaxPayload is the largest message the server accepts, headers included.
func (b *Bus) MaxPayload() int64 { return b.nc.MaxPayload() }

// ensureBackoff paces the retries of a declaration JetStream does not
// answer, long enough for a NATS restart: about 53 s of pauses, plus up to
// ensureRequestTimeout per try while NATS is down (about 3.4 min at most).
// Liveness is served meanwhile: the health server is up before consumers
// are declared.
var ensureBackoff = retry.Backoff{Base: 250 * time.Millisecond, Max: 5 * time.Second, Attempts: 15}

// ensureRequestTimeout bounds each try of a declaration. A request
// JetStream drops (a cluster still electing its meta leader does) is never
// answered; the caller's start-up context has a deadline of minutes, which
// the client would otherwise wait out on the first try instead of retrying.
var ensureRequestTimeout = 10 * time.Second

// Ensure creates or updates every stream, so starting a service twice, or
// several replicas at once, converges on the same declarations.
func (b *Bus) Ensure(ctx context.Context) error {
	for _, sc := range b.cfg.Streams() {
		if err := b.Declare(ctx, "stream "+sc.Name, func(ctx context.Context) error {
			_, err := b.js.CreateOrUpdateStream(ctx, sc)
			return err
		}); err != nil {
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// Declare runs try, a JetStream declaration (a stream, a consumer, a
// key-value bucket), until JetStream answers it. A service may start while
// NATS restarts (a rolling update, a rescheduled pod, a process restarted
// by its supervisor a moment before), so a try that goes unanswered is
// retried with backoff, each bounded by its own timeout; an answer that
// refuses the declaration is returned at once.
func (b *Bus) Declare(ctx context.Context, what string, try func(ctx context.Context) error) error {
	for n := 1; ; n++ {
		rctx, cancel := context.WithTimeout(ctx, ensureRequestTimeout)
		err := try(rctx)
		cancel()
		if err == nil || !unanswered(ctx, err) || n >= ensureBackoff.Attempts {
			return err
		}
		b.log.WarnContext(ctx, "jetstream did not answer, retrying", "declaration", what, "attempt", n, "error", err)
		if serr := retry.Sleep(ctx, ensureBackoff.Delay(n-1)); serr != nil {
			return err
		}
	}
}

// unanswered reports whether a JetStream request failed for want of an
// answer (the server restarting or unreachable) rather than a refusal.
func unanswered(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}

// Healthy reports whether the connection is up, for readiness checks.
func (b *Bus) Healthy(ctx context.Context) error {
	if !b.nc.IsConnected() {
		return fmt.Errorf("nats: %s", b.nc.Status())
	}
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}
