// Package webhook is gc-webhook's HTTP ingress for GoCardless webhooks. A
// request is read under a size limit, its Webhook-Signature checked against
// every current secret in constant time, its events parsed, and each event
// published as its own JetStream message; only when JetStream has
// acknowledged every one of them does the handler answer 204. Anything less
// is an answer that makes GoCardless deliver again, so an event is never
// acknowledged to GoCardless without being durable here.
//
// Everything that arrives is bounded before it reaches NATS: the body, the
// number of events, each event's fields (gcmsg.Check), the requests
// handled at once. An event out of bounds is not dropped and does not make
// its batch fail forever: it is stored as a dead letter with its raw bytes
// (an exception for an operator) together with the rest of the batch.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcmsg"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/connections"
)

// StatusInvalidToken is GoCardless's expected answer to a bad signature.
const StatusInvalidToken = 498

// Publisher makes messages durable; *bus.Bus is one.
type Publisher interface {
	PublishBatch(ctx context.Context, msgs []bus.Msg) ([]bus.Ack, error)
}

// ErrUnknownConnection is returned by a SecretSource for a connection that
// does not exist or is not a GoCardless connection with a webhook secret.
var ErrUnknownConnection = errors.New("unknown gocardless connection")

// SecretSource gives the webhook secrets of a named connection.
type SecretSource interface {
	WebhookSecrets(ctx context.Context, connection string) ([][]byte, error)
}

// Config tunes the handler.
type Config struct {
	// Secrets verify POST /webhooks/gocardless (GC_WEBHOOK_SECRET); several
	// are accepted while a secret is being rotated.
	Secrets [][]byte
	// Connection names the GoCardless account behind the secrets of
	// Secrets, recorded in every message ("" for a single account).
	Connection string
	// Registry verifies POST /webhooks/gocardless/{connection}; nil
	// disables that route.
	Registry SecretSource
	// MaxBody bounds a request body; GoCardless sends at most a few
	// hundred kilobytes.
	MaxBody int64
	// PublishTimeout bounds waiting for JetStream, so GoCardless (which
	// gives up after 10 s) hears 503 and retries rather than timing out.
	PublishTimeout time.Duration
	// MaxEvents bounds the events of one request; more get 413.
	MaxEvents int
	// MaxConcurrent bounds the requests read and published at once; with
	// MaxBody it bounds the memory a flood can take (see docs/benchmarks.md).
	MaxConcurrent int
	// QueueWait is how long a request waits for one of the MaxConcurrent
	// slots before it is answered 503 with Retry-After.
	QueueWait time.Duration
	// MaxPayload is the largest message NATS accepts (nats.Conn.MaxPayload);
	// an event whose message would be larger is dead-lettered instead.
	MaxPayload int64
}

// Defaults of Config, and of gc-webhook's settings.
const (
	DefaultMaxBody       = 2 << 20
	DefaultMaxEvents     = 1000
	DefaultMaxConcurrent = 4
	DefaultQueueWait     = 2 * time.Second
	defaultMaxPayload    = 1 << 20 // nats-server's default max_payload
)

// Handler serves the webhook routes.
type Handler struct {
	cfg     Config
	slots   chan struct{}
	pub     Publisher
	log     *slog.Logger
	next    http.Handler
	metrics metrics
	now     func() time.Time
}

type metrics struct {
	requests      metric.Int64Counter
	events        metric.Int64Counter
	rejected      metric.Int64Counter
	signatureFail metric.Int64Counter
	latency       metric.Float64Histogram
}

// New returns the handler.
func New(cfg Config, pub Publisher, log *slog.Logger) (*Handler, error) {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 8 * time.Second
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = DefaultMaxEvents
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.QueueWait <= 0 {
		cfg.QueueWait = DefaultQueueWait
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = defaultMaxPayload
	}
	meter := otel.Meter("github.com/ml-connector/ml-connector/services/gc-webhook")
	var m metrics
	var errs [5]error
	m.requests, errs[0] = meter.Int64Counter("mlc_webhook_requests", metric.WithDescription("webhook requests by HTTP status"))
	m.events, errs[1] = meter.Int64Counter("mlc_webhook_events_published", metric.WithDescription("events made durable on JetStream"))
	m.signatureFail, errs[2] = meter.Int64Counter("mlc_webhook_signature_failures", metric.WithDescription("requests refused for a missing or bad signature"))
	m.rejected, errs[4] = meter.Int64Counter("mlc_webhook_events_rejected", metric.WithDescription("events out of bounds, stored as dead letters"))
	m.latency, errs[3] = meter.Float64Histogram("mlc_webhook_request_seconds", metric.WithDescription("time to answer a webhook request"), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("webhook metrics: %w", err)
	}
	h := &Handler{cfg: cfg, slots: make(chan struct{}, cfg.MaxConcurrent), pub: pub, log: log, metrics: m, now: time.Now}
	mux := http.NewServeMux()
	mux.HandleFunc("/webhooks/gocardless", h.serveDefault)
	mux.HandleFunc("/webhooks/gocardless/{connection}", h.serveConnection)
	// A server span per request: every event published from it continues
	// this trace, so a collection's story starts at the webhook.
	h.next = otelhttp.NewHandler(mux, "gocardless webhook")
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.next.ServeHTTP(w, r) }

func (h *Handler) serveDefault(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, h.cfg.Connection, func(context.Context) ([][]byte, error) {
		if len(h.cfg.Secrets) == 0 {
			return nil, ErrUnknownConnection
		}
		return h.cfg.Secrets, nil
	})
}

func (h *Handler) serveConnection(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("connection")
	if !connections.ValidName(name) {
		// Not a name a connection can have: no lookup, and not logged as
		// given (it may be anything up to the URL length limit).
		name = "(invalid)"
	}
	h.serve(w, r, name, func(ctx context.Context) ([][]byte, error) {
		if h.cfg.Registry == nil || name == "(invalid)" {
			return nil, ErrUnknownConnection
		}
		return h.cfg.Registry.WebhookSecrets(ctx, name)
	})
}

// result is what a request came to, for the answer, the log and metrics.
type result struct {
	status     int
	reason     string
	webhookID  string
	events     int
	rejected   int
	retryAfter int // seconds, for 503 when busy
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, connection string, secrets func(context.Context) ([][]byte, error)) {
	start := h.now()
	res := h.process(r, connection, secrets)
	if res.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	if res.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(res.retryAfter))
	}
	if res.status == http.StatusNoContent {
		w.WriteHeader(res.status)
	} else {
		http.Error(w, res.reason, res.status)
	}

	elapsed := h.now().Sub(start)
	attrs := metric.WithAttributes(attribute.Int("status", res.status))
	h.metrics.requests.Add(r.Context(), 1, attrs)
	h.metrics.latency.Record(r.Context(), elapsed.Seconds(), attrs)
	level := slog.LevelInfo
	if res.status >= 500 {
		level = slog.LevelError
	} else if res.status >= 400 {
		level = slog.LevelWarn
	}
	h.log.Log(r.Context(), level, "webhook request", "connection", connection, "webhook_id", res.webhookID,
		"events", res.events, "rejected", res.rejected, "status", res.status, "reason", res.reason, "duration_ms", elapsed.Milliseconds())
}

func (h *Handler) process(r *http.Request, connection string, secretsOf func(context.Context) ([][]byte, error)) result {
	if r.Method != http.MethodPost {
		return result{status: http.StatusMethodNotAllowed, reason: "method not allowed"}
	}
	secrets, err := secretsOf(r.Context())
	switch {
	case errors.Is(err, ErrUnknownConnection):
		return result{status: http.StatusNotFound, reason: "unknown connection"}
	case err != nil:
		h.log.ErrorContext(r.Context(), "webhook secrets unavailable", "connection", connection, "error", err)
		return result{status: http.StatusServiceUnavailable, reason: "secrets unavailable"}
	}

	// Each request in hand holds its body several times over (raw, split,
	// decoded, encoded); bounding how many are in hand bounds the memory a
	// flood can take. Waiting requests hold no body yet.
	wait := time.NewTimer(h.cfg.QueueWait)
	select {
	case h.slots <- struct{}{}:
		wait.Stop()
		defer func() { <-h.slots }()
	case <-wait.C:
		return result{status: http.StatusServiceUnavailable, reason: "busy; retry", retryAfter: 1}
	case <-r.Context().Done():
		wait.Stop()
		return result{status: http.StatusServiceUnavailable, reason: "client gone"}
	}

	body, err := readBody(r, h.cfg.MaxBody)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return result{status: http.StatusRequestEntityTooLarge, reason: fmt.Sprintf("body larger than %d bytes", h.cfg.MaxBody)}
	case err != nil:
		return result{status: http.StatusBadRequest, reason: "unreadable body"}
	}

	if err := gocardless.VerifySignature(body, r.Header.Get(gocardless.SignatureHeader), secrets...); err != nil {
		h.metrics.signatureFail.Add(r.Context(), 1)
		reason := "invalid signature"
		if errors.Is(err, gocardless.ErrMissingSignature) {
			reason = "missing signature"
		}
		return result{status: StatusInvalidToken, reason: reason}
	}

	b, err := parseBatch(body, h.cfg.MaxEvents)
	switch {
	case errors.Is(err, errTooManyEvents):
		return result{status: http.StatusRequestEntityTooLarge, reason: fmt.Sprintf("more than %d events", h.cfg.MaxEvents)}
	case err != nil:
		return result{status: http.StatusBadRequest, reason: "malformed webhook"}
	}
	res := result{webhookID: b.webhookID, events: len(b.events)}
	if b.badWebhookID {
		h.log.WarnContext(r.Context(), "webhook id not of GoCardless's shape; events kept without it", "connection", connection)
	}
	env := gcmsg.Envelope{Connection: connection, WebhookID: b.webhookID, Source: gcmsg.FromWebhook, ReceivedAt: h.now()}
	msgs := make([]bus.Msg, 0, len(b.events)+len(b.rejected))
	rejected := b.rejected
	for _, e := range b.events {
		m, err := gcmsg.BusMsg(e, env)
		if err == nil {
			err = bus.CheckMsg(m, h.cfg.MaxPayload)
		}
		if err != nil {
			rejected = append(rejected, rejectedEvent{raw: e.Raw, reason: "event cannot be a message: " + err.Error()})
			continue
		}
		msgs = append(msgs, m)
	}
	for _, rj := range rejected {
		msgs = append(msgs, gcmsg.DeadLetter(gcmsg.Refused{Source: "gc-webhook", Connection: connection, WebhookID: b.webhookID,
			Reason: rj.reason, Raw: rj.raw}, h.cfg.MaxPayload))
		h.log.WarnContext(r.Context(), "webhook event out of bounds, kept as a dead letter", "connection", connection,
			"webhook_id", b.webhookID, "reason", rj.reason, "bytes", len(rj.raw))
	}
	res.events, res.rejected = len(msgs)-len(rejected), len(rejected)

	// The request's own context would end when GoCardless hangs up; the
	// publish is bounded by our timeout instead, so a late client does not
	// leave a half-published batch unexplained.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.cfg.PublishTimeout)
	defer cancel()
	if _, err := h.pub.PublishBatch(ctx, msgs); err != nil {
		h.log.ErrorContext(r.Context(), "webhook events not durable", "webhook_id", b.webhookID, "error", err)
		res.status, res.reason = http.StatusServiceUnavailable, "events could not be stored; retry"
		return res
	}
	h.metrics.events.Add(r.Context(), int64(res.events))
	h.metrics.rejected.Add(r.Context(), int64(res.rejected))
	res.status = http.StatusNoContent
	return res
}

// Headers on a rejected event's dead letter, besides bus's Mlc-Dlq-*.
const (
	HeaderConnection = gcmsg.HeaderConnection
	HeaderWebhookID  = gcmsg.HeaderWebhookID
)

// readBody reads r's body up to limit bytes, into a buffer sized from
// Content-Length when it is given and within the limit, so that a large
// body is not copied through every doubling of a growing buffer.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= limit {
		buf.Grow(int(n) + 1) // +1: ReadFrom wants room to see EOF
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(nil, r.Body, limit))
	return buf.Bytes(), err
}
