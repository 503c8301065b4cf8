// Package jde is ml-connector's client of the JD Edwards EnterpriseOne AIS
// server: session tokens (login, proactive re-login, re-login on HTTP 444,
// logout), the data service BROWSE with next-page links (also across the
// nodes of a load-balanced deployment, with the balancer's affinity
// cookie), AIS orchestrations, and the Writer that posts GoCardless
// outcomes (cash receipts, by default as F03B13Z1 electronic receipts for
// R03B551; failures, refunds, mandate status) through them. It also reads what JDE stores in
// its own way: Julian CYYDDD dates and amounts with implied decimals.
//
// Transient failures (network, 429, 5xx) are retried with exponential
// backoff and full jitter behind a circuit breaker; the password and the
// session token never appear in errors, logs or traces.
package jde

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/ml-connector/ml-connector/platform/breaker"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

// Defaults of Config.
const (
	DefaultDeviceName   = "ml-connector"
	DefaultRole         = "*ALL"
	DefaultRefreshEvery = 50 * time.Minute
	DefaultTimeout      = 60 * time.Second
	DefaultPageSize     = 500
)

// Config says how to reach one AIS server.
type Config struct {
	// Name identifies the connection in breaker names and logs.
	Name string
	// BaseURL is the AIS server's root, e.g. https://ais.example.com:9300;
	// the client appends /jderest/....
	BaseURL string
	// Nodes are the base URLs of the AIS servers of the same deployment
	// behind BaseURL's load balancer. A data-service next link names the
	// node that holds the result set; it is followed only to BaseURL's
	// host or to one of these, so the session token goes nowhere else.
	Nodes       []string
	Username    string
	Password    secrets.Value
	DeviceName  string // default "ml-connector"; also sent as jde-AIS-Auth-Device
	Environment string // e.g. "JDV920"; empty lets AIS use its default
	Role        string // default "*ALL"
	// RefreshEvery is how old a session may get before the client logs in
	// again on its own, before AIS's own timeout (30–60 min) ends it.
	RefreshEvery time.Duration
	// PageSize is the data service maxPageSize.
	PageSize int
	// Timeout bounds each HTTP exchange.
	Timeout time.Duration
	Backoff retry.Backoff
	Breaker breaker.Options
	// Now is the clock session ages are measured on (time.Now if nil).
	Now func() time.Time
	// Transport carries requests (http.DefaultTransport if nil); the client
	// wraps it with otelhttp.
	Transport http.RoundTripper
	Log       *slog.Logger
}

// Client talks to one AIS server with one session at a time. It is safe
// for concurrent use.
type Client struct {
	cfg   Config
	base  *url.URL
	nodes map[string]bool // scheme://host of Nodes
	http  *http.Client
	cb    *gobreaker.CircuitBreaker[*response]

	mu   sync.Mutex
	sess *session
}

// session is a logged-in AIS session.
type session struct {
	token      string
	loggedInAt time.Time
	dateFormat DateFormat
}

// New checks cfg and returns a client. It does not contact AIS; the first
// call logs in.
func New(cfg Config) (*Client, error) {
	var errs []error
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https") {
		errs = append(errs, fmt.Errorf("base URL %q must be an absolute http(s) URL", cfg.BaseURL))
	}
	if cfg.Username == "" {
		errs = append(errs, errors.New("username is required"))
	}
	if cfg.Password.Empty() {
		errs = append(errs, errors.New("password is required"))
	}
	nodes := map[string]bool{}
	for _, n := range cfg.Nodes {
		u, err := url.Parse(strings.TrimRight(n, "/"))
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil {
			errs = append(errs, errors.New("every AIS node must be an absolute http(s) URL without credentials"))
			continue
		}
		nodes[u.Scheme+"://"+u.Host] = true
	}
	if cfg.RefreshEvery < 0 || cfg.PageSize < 0 || cfg.Timeout < 0 {
		errs = append(errs, errors.New("refresh interval, page size and timeout must not be negative"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: jde client %q: %w", ErrInvalid, cfg.Name, errors.Join(errs...))
	}
	if cfg.DeviceName == "" {
		cfg.DeviceName = DefaultDeviceName
	}
	if cfg.Role == "" {
		cfg.Role = DefaultRole
	}
	if cfg.RefreshEvery == 0 {
		cfg.RefreshEvery = DefaultRefreshEvery
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Backoff.Attempts == 0 {
		cfg.Backoff = retry.DefaultBackoff
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	bo := cfg.Breaker
	if bo.IsSuccessful == nil {
		// Only an unreachable or failing AIS counts against it; a refused
		// request proves it is up.
		bo.IsSuccessful = func(err error) bool { return err == nil || !errors.Is(err, ErrUnavailable) }
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, fmt.Errorf("jde client %q: cookie jar: %w", cfg.Name, err)
	}
	c := &Client{
		cfg:   cfg,
		base:  base,
		nodes: nodes,
		http: &http.Client{
			Transport: otelhttp.NewTransport(cfg.Transport),
			Timeout:   cfg.Timeout,
			// A load balancer in front of AIS keeps a session on the node
			// that issued it by cookie (Oracle, "Using Stateless Load
			// Balancing": without stateless mode a token is valid only on
			// its node); without the cookie every call may land elsewhere
			// and answer 444. The jar keeps cookies of the base URL only.
			Jar: boundJar{jar: jar, scheme: base.Scheme, host: base.Host},
			// A redirect would replay the auth headers somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		cb: breaker.New[*response]("jde/"+cfg.Name, bo),
	}
	return c, nil
}

// response is one HTTP exchange, read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// exchange is one request to make, possibly several times.
type exchange struct {
	op     string // for errors, e.g. "dataservice F03B11"
	url    string
	body   []byte
	token  string // "" for the token request itself
	noWait bool   // a single attempt: the request is not safe to repeat
}

// send performs x with backoff on transient failures and the breaker in
// front. It returns any response with a status, leaving status handling to
// the caller, and an error only when no usable answer came back.
func (c *Client) send(ctx context.Context, x exchange) (*response, error) {
	attempts := c.cfg.Backoff.Attempts
	if x.noWait || attempts < 1 {
		attempts = 1
	}
	var lastErr error
	for n := 0; n < attempts; n++ {
		if n > 0 {
			wait := c.cfg.Backoff.Delay(n - 1)
			var rerr *retryAfterError
			if errors.As(lastErr, &rerr) && rerr.after > wait {
				wait = rerr.after
			}
			if err := retry.Sleep(ctx, wait); err != nil {
				return nil, fmt.Errorf("jde: %s: %w (after %v)", x.op, err, lastErr)
			}
		}
		resp, err := c.cb.Execute(func() (*response, error) { return c.attempt(ctx, x) })
		if err == nil {
			return resp, nil
		}
		if breaker.IsOpen(err) {
			return nil, fmt.Errorf("jde: %s: %w: circuit breaker open: %w", x.op, ErrUnavailable, err)
		}
		lastErr = err
		if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			break
		}
		c.cfg.Log.WarnContext(ctx, "jde call failed, will retry", "connection", c.cfg.Name, "op", x.op, "attempt", n+1, "error", err)
	}
	return nil, lastErr
}

// retryAfterError is a transient HTTP failure with the server's Retry-After.
type retryAfterError struct {
	err   *Error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// attempt makes one HTTP exchange. 429 and 5xx come back as errors so that
// they count against the breaker and are retried.
func (c *Client) attempt(ctx context.Context, x exchange) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, x.url, bytes.NewReader(x.body))
	if err != nil {
		return nil, fmt.Errorf("%w: jde: %s: build request: %w", ErrInvalid, x.op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if x.token != "" {
		req.Header.Set("jde-AIS-Auth", x.token)
		req.Header.Set("jde-AIS-Auth-Device", c.cfg.DeviceName)
	}
	hr, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("jde: %s: %w", x.op, ctx.Err())
		}
		// url.Error repeats the URL, which for a next-page link could hold
		// parameters AIS put there; keep only the cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("jde: %s: %w: %w", x.op, ErrUnavailable, err)
	}
	defer hr.Body.Close()
	body, err := io.ReadAll(io.LimitReader(hr.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("jde: %s: %w: read response: %w", x.op, ErrUnavailable, err)
	}
	resp := &response{status: hr.StatusCode, header: hr.Header, body: body}
	if retry.Status(hr.StatusCode) && !resultSetExpired(resp) && decodeError(x.op, resp).StepError == "" {
		e := decodeError(x.op, resp)
		after, _ := retry.After(hr.Header, c.cfg.Now())
		return nil, &retryAfterError{err: e, after: after}
	}
	return resp, nil
}

// decodeError reads an AIS error body: {"message","exception","timeStamp",
// "status"} with, from a failed orchestration step, "userDefinedErrorText"
// (the ServiceErrorResponse of "Execute an Orchestration v2",
// https://docs.oracle.com/en/applications/jd-edwards/cross-product/9.2/rest-api/op-v2-orchestrator-orchestration-post.html),
// or the {"sysErrors":[{"TITLE","DESC"}]} form of form and data service
// failures. A step's own error is a refusal, never retried.
func decodeError(op string, r *response) *Error {
	e := &Error{Op: op, HTTPStatus: r.status}
	var body struct {
		Message   string `json:"message"`
		Exception string `json:"exception"`
		TimeStamp string `json:"timeStamp"`
		Status    string `json:"status"`
		StepError string `json:"userDefinedErrorText"`
		SysErrors []struct {
			Title string `json:"TITLE"`
			Desc  string `json:"DESC"`
		} `json:"sysErrors"`
	}
	if json.Unmarshal(r.body, &body) == nil {
		e.Message, e.Exception, e.TimeStamp, e.Status = body.Message, body.Exception, body.TimeStamp, body.Status
		e.StepError = strings.TrimSpace(body.StepError)
		if e.Message == "" && len(body.SysErrors) > 0 {
			e.Message = body.SysErrors[0].Title
		}
	}
	return e
}

// resultSetExpired recognises AIS's answer to a next-page call whose result
// set it no longer holds (JAS_MSG347), which no retry can fix.
func resultSetExpired(r *response) bool {
	return r.status >= 500 && bytes.Contains(r.body, []byte("JAS_MSG347"))
}

// url returns the absolute URL of an AIS path such as "/jderest/v2/dataservice".
func (c *Client) url(path string) string { return c.base.String() + path }

// call makes an authenticated call and decodes a 2xx answer into out. On
// 444 it logs in again at once and repeats the call once.
func (c *Client) call(ctx context.Context, op, path string, in, out any) error {
	_, err := c.callIn(ctx, op, path, in, out)
	return err
}

// callIn is call, also returning the session that answered.
func (c *Client) callIn(ctx context.Context, op, path string, in, out any) (*session, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("%w: jde: %s: encode request: %w", ErrInvalid, op, err)
	}
	for try := 0; ; try++ {
		s, err := c.session(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := c.send(ctx, exchange{op: op, url: c.url(path), body: body, token: s.token})
		if err != nil {
			return nil, err
		}
		if resp.status == StatusInvalidToken {
			c.dropSession(s)
			if try == 0 {
				c.cfg.Log.InfoContext(ctx, "jde session token refused, logging in again", "connection", c.cfg.Name, "op", op)
				continue
			}
			return nil, fmt.Errorf("%w: %w", ErrInvalidToken, decodeError(op, resp))
		}
		return s, decodeOK(op, resp, out)
	}
}

func decodeOK(op string, resp *response, out any) error {
	if resp.status < 200 || resp.status > 299 {
		return decodeError(op, resp)
	}
	if out == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(resp.body))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("jde: %s: %w: unreadable response: %w", op, ErrUnavailable, err)
	}
	return nil
}

// boundJar is a cookie jar that takes and gives cookies only for one
// scheme and host: the AIS base URL (its load balancer).
type boundJar struct {
	jar          http.CookieJar
	scheme, host string
}

func (j boundJar) bound(u *url.URL) bool { return u.Scheme == j.scheme && u.Host == j.host }

func (j boundJar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	if j.bound(u) {
		j.jar.SetCookies(u, cookies)
	}
}

func (j boundJar) Cookies(u *url.URL) []*http.Cookie {
	if j.bound(u) {
		return j.jar.Cookies(u)
	}
	return nil
}
