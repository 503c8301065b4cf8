package gocardless

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/ml-connector/ml-connector/platform/breaker"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

// APIVersion is the GoCardless-Version this client speaks.
const APIVersion = "2015-07-06"

// Base URLs of GoCardless.
const (
	LiveURL    = "https://api.gocardless.com"
	SandboxURL = "https://api-sandbox.gocardless.com"
)

// maxBody bounds what is read of an answer; GoCardless pages of 500
// resources are well under it.
const maxBody = 32 << 20

// Clock is the time the client paces and backs off by; the default is
// real time. Tests replace it to see the waits without waiting them.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends, returning ctx's error then.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time                                   { return time.Now() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error { return retry.Sleep(ctx, d) }

// Client calls the GoCardless API for one access token. It is safe for
// concurrent use; share one per token, since the rate limit, the pacing
// and the breaker are per token.
type Client struct {
	base      string // scheme://host[/prefix], no trailing slash
	token     secrets.Value
	http      *http.Client
	userAgent string
	log       *slog.Logger
	clock     Clock
	backoff   retry.Backoff
	limited   int // how many 429s one call rides out
	pace      *limiter
	breaker   *gobreaker.CircuitBreaker[*answer]
}

// Option configures a Client.
type Option func(*options)

type options struct {
	httpClient  *http.Client
	transport   http.RoundTripper
	tracer      trace.TracerProvider
	backoff     retry.Backoff
	limited     int
	pacing      bool
	breakerName string
	breaker     breaker.Options
	clock       Clock
	log         *slog.Logger
	userAgent   string
	shared      func(tokenFingerprint string) SharedWindow
}

// WithHTTPClient sends requests with a copy of hc (its timeout, jar and
// redirect policy), its transport wrapped for tracing.
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.httpClient = hc } }

// WithTransport sends requests through rt, wrapped for tracing.
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// WithTracerProvider records spans with tp instead of the global provider.
func WithTracerProvider(tp trace.TracerProvider) Option { return func(o *options) { o.tracer = tp } }

// WithBackoff sets the backoff for server and network errors;
// Attempts bounds the attempts of one call. Default retry.DefaultBackoff.
func WithBackoff(b retry.Backoff) Option { return func(o *options) { o.backoff = b } }

// WithRateLimitRetries sets how many 429 answers one call waits out before
// giving up (default 8). Each wait lasts until the limit resets.
func WithRateLimitRetries(n int) Option { return func(o *options) { o.limited = n } }

// WithPacing turns pacing by the RateLimit headers on (the default) or off.
func WithPacing(on bool) Option { return func(o *options) { o.pacing = on } }

// WithBreaker names the client's circuit breaker (it appears in the
// mlc_breaker_state metric as "gocardless/<name>") and tunes it. If
// bo.IsSuccessful is nil the client's rule applies: 4xx answers other
// than 429 count as successes, since they prove GoCardless is up.
func WithBreaker(name string, bo breaker.Options) Option {
	return func(o *options) { o.breakerName, o.breaker = name, bo }
}

// WithClock replaces real time for pacing and backoff.
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// WithLogger logs retries and waits to l (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(o *options) { o.userAgent = ua } }

// newLimiter is the client's pacing: shared with the token's other
// clients when o says where (WithSharedBudget).
func newLimiter(o options, token secrets.Value) *limiter {
	l := &limiter{clock: o.clock, off: !o.pacing}
	if o.shared != nil && o.pacing {
		l.shared = newSharedBudget(o.shared(TokenFingerprint(token)), o.clock)
	}
	return l
}

// New returns a client for the API at baseURL (LiveURL, SandboxURL or a
// simulator) authenticating with token.
func New(baseURL string, token secrets.Value, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("gocardless: base url: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("gocardless: base url %q: want http(s)://host[/path]", u.Redacted())
	}
	if token.Empty() {
		return nil, errors.New("gocardless: access token is empty")
	}
	o := options{
		backoff:   retry.DefaultBackoff,
		limited:   8,
		pacing:    true,
		clock:     realClock{},
		log:       slog.Default(),
		userAgent: "ml-connector-gocardless/1",
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.backoff.Attempts < 1 {
		o.backoff.Attempts = 1
	}
	hc := &http.Client{Timeout: 60 * time.Second}
	if o.httpClient != nil {
		c := *o.httpClient
		hc = &c
	}
	rt := hc.Transport
	if o.transport != nil {
		rt = o.transport
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	topts := []otelhttp.Option{otelhttp.WithSpanNameFormatter(spanName)}
	if o.tracer != nil {
		topts = append(topts, otelhttp.WithTracerProvider(o.tracer))
	}
	hc.Transport = otelhttp.NewTransport(rt, topts...)

	name := o.breakerName
	if name == "" {
		name = u.Host
	}
	bo := o.breaker
	if bo.IsSuccessful == nil {
		bo.IsSuccessful = healthy
	}
	return &Client{
		base:      strings.TrimSuffix(u.String(), "/"),
		token:     token,
		http:      hc,
		userAgent: o.userAgent,
		log:       o.log,
		clock:     o.clock,
		backoff:   o.backoff,
		limited:   o.limited,
		pace:      newLimiter(o, token),
		breaker:   breaker.New[*answer]("gocardless/"+name, bo),
	}, nil
}

// healthy is the breaker's rule: what does not show GoCardless failing
// counts as a success. The caller's own context ending says nothing about
// GoCardless either; an HTTP timeout (a network error, even though it
// matches context.DeadlineExceeded) does.
func healthy(err error) bool {
	var n *networkError
	var e *APIError
	switch {
	case err == nil:
		return true
	case errors.As(err, &n):
		return false
	case errors.As(err, &e):
		return e.Code < 500 && e.Code != http.StatusTooManyRequests
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

type routeKey struct{}

// spanName names a span by method and path template, never by anything
// that could carry a secret or an unbounded id.
func spanName(_ string, r *http.Request) string {
	route, _ := r.Context().Value(routeKey{}).(string)
	return "gocardless " + r.Method + " " + route
}

// request is one API call.
type request struct {
	method string
	path   string // escaped, e.g. /payments/PM1/actions/cancel
	route  string // template, e.g. /payments/{id}/actions/cancel
	query  url.Values
	key    string // Idempotency-Key
	body   []byte
	// repeatable marks a POST without a key that may still be sent again:
	// doing it twice is harmless (a second billing request flow).
	repeatable bool
}

// answer is a response read in full.
type answer struct {
	header http.Header
	body   []byte
	unsure bool // an earlier attempt of the call may have taken effect
}

// retryable says whether repeating r cannot do anything twice.
func (r request) retryable() bool {
	switch r.method {
	case http.MethodGet, http.MethodPut:
		return true
	case http.MethodPost:
		return r.key != "" || r.repeatable
	}
	return false
}

// do makes the call, retrying what is safe to retry, and returns the body
// of the 2xx answer.
//
// The breaker judges whole calls, not attempts: a call that rides out a
// 429 or a short burst of 5xx is a success, one that gives up (attempts or
// rate-limit waits used up, or its deadline reached while GoCardless was
// failing) is a failure. So a blip never opens the breaker, an outage
// does, and a deadline that ends every call early still counts.
func (c *Client) do(ctx context.Context, r request) ([]byte, error) {
	body, _, err := c.doUnsure(ctx, r)
	return body, err
}

// doUnsure is do that also says whether an earlier attempt of the call
// may have taken effect (it failed with a 5xx or on the network) even
// though a later one was answered.
func (c *Client) doUnsure(ctx context.Context, r request) (body []byte, unsure bool, err error) {
	ctx = context.WithValue(ctx, routeKey{}, r.route)
	a, err := c.breaker.Execute(func() (*answer, error) { return c.call(ctx, r) })
	if a != nil {
		unsure = a.unsure
	}
	if breaker.IsOpen(err) {
		return nil, false, c.fail(r, fmt.Errorf("%w: %w", ErrUnavailable, err))
	}
	if err != nil {
		return nil, unsure, c.fail(r, err)
	}
	return a.body, unsure, nil
}

// call makes the attempts of one call. Its answer, if any, is the last
// one, and says whether an earlier attempt may have taken effect.
func (c *Client) call(ctx context.Context, r request) (*answer, error) {
	var last error // the last failure worth retrying
	failures, limited := 0, 0
	unsure := false
	for {
		if err := c.pace.acquire(ctx); err != nil {
			return &answer{unsure: unsure}, withLast(err, last)
		}
		a, err := c.attempt(ctx, r)
		if a == nil {
			a = &answer{}
		}
		a.unsure = unsure
		if err == nil {
			return a, nil
		}
		if ctx.Err() != nil {
			return a, withLast(ctx.Err(), last)
		}
		var apiErr *APIError
		isAPI := errors.As(err, &apiErr)
		if !r.retryable() || isAPI && apiErr.Code != http.StatusTooManyRequests && apiErr.Code < 500 {
			return a, err
		}
		last = err
		var wait time.Duration
		if isAPI && apiErr.Code == http.StatusTooManyRequests {
			limited++
			if limited > c.limited {
				return a, fmt.Errorf("rate limited %d times: %w", limited, err)
			}
			wait = c.untilReset(a.header, limited)
			c.log.InfoContext(ctx, "gocardless rate limited, waiting for reset",
				"method", r.method, "route", r.route, "wait", wait, "request_id", apiErr.RequestID)
		} else {
			// A 5xx or a lost answer: the request may have been done.
			unsure = true
			failures++
			if failures >= c.backoff.Attempts {
				return a, fmt.Errorf("%d attempts: %w", failures, err)
			}
			wait = c.backoff.Delay(failures - 1)
			if d, ok := retry.After(a.header, c.clock.Now()); ok && d > wait {
				wait = d
			}
			c.log.WarnContext(ctx, "gocardless call failed, retrying",
				"method", r.method, "route", r.route, "attempt", failures, "wait", wait, "error", err)
		}
		if err := c.clock.Sleep(ctx, wait); err != nil {
			return &answer{unsure: unsure}, withLast(err, last)
		}
	}
}

// withLast adds to the error that ended a call (its context, usually)
// the failure that was being retried, so that both the caller and the
// breaker see that GoCardless was failing.
func withLast(err, last error) error {
	if last == nil {
		return err
	}
	return fmt.Errorf("%w; last failure: %w", err, last)
}

func (c *Client) fail(r request, err error) error {
	return fmt.Errorf("gocardless %s %s: %w", r.method, r.path, err)
}

// untilReset is how long to wait after the n-th 429 of a call: until the
// server says the limit resets, plus jitter so that waiting callers do not
// return all at once.
func (c *Client) untilReset(h http.Header, n int) time.Duration {
	now := c.clock.Now()
	d, ok := retry.After(h, now)
	if !ok {
		d, ok = resetIn(h, now)
	}
	if !ok {
		return c.backoff.Delay(n - 1)
	}
	return d + rand.N(d/4+100*time.Millisecond)
}

// attempt sends r once. Its error is what the breaker judges: an
// *APIError, a *networkError or the context's error.
func (c *Client) attempt(ctx context.Context, r request) (*answer, error) {
	defer c.pace.done()
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token.Reveal())
	req.Header.Set("GoCardless-Version", APIVersion)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if r.key != "" {
		req.Header.Set("Idempotency-Key", r.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &networkError{err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &networkError{fmt.Errorf("read answer: %w", err)}
	}
	c.pace.observe(ctx, resp.Header)
	a := &answer{header: resp.Header, body: b}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return a, nil
	}
	return a, decodeError(resp.StatusCode, b)
}

// decodeError reads GoCardless's error body. An answer that is not one
// (say, a proxy's HTML page) still becomes an *APIError with the status.
func decodeError(status int, b []byte) *APIError {
	var w struct {
		Error struct {
			Type             string        `json:"type"`
			Code             int           `json:"code"`
			Message          string        `json:"message"`
			RequestID        string        `json:"request_id"`
			DocumentationURL string        `json:"documentation_url"`
			Errors           []ErrorDetail `json:"errors"`
		} `json:"error"`
	}
	e := &APIError{Code: status}
	if json.Unmarshal(b, &w) != nil || w.Error.Type == "" && w.Error.Message == "" {
		e.Message = http.StatusText(status)
		return e
	}
	e.Type, e.Message, e.RequestID = w.Error.Type, w.Error.Message, w.Error.RequestID
	e.DocumentationURL, e.Errors = w.Error.DocumentationURL, w.Error.Errors
	return e
}
