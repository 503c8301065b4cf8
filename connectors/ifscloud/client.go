package ifscloud

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"golang.org/x/oauth2"
	"golang.org/x/time/rate"

	"github.com/ml-connector/ml-connector/platform/breaker"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

// Options tune a Client; the zero value is what services use.
type Options struct {
	// HTTPClient is the base client; its transport is wrapped with
	// otelhttp. Nil means a client over http.DefaultTransport with the
	// connection's request_timeout.
	HTTPClient *http.Client
	// Limiter replaces the shared per-tenant limiter (requests_per_minute).
	Limiter *rate.Limiter
	// Backoff replaces retry.DefaultBackoff for 429, 5xx and network errors.
	Backoff retry.Backoff
	// Breaker tunes the circuit breaker "ifs/<connection>".
	Breaker breaker.Options
	// Now replaces time.Now for token ages and Retry-After dates.
	Now func() time.Time
	// Log receives the client's one-time notices (a nextLink rebased, an
	// Objstate filter IFS refused); nil means slog.Default().
	Log *slog.Logger
}

// Client talks to one IFS Cloud connection. It is safe for concurrent use.
type Client struct {
	name    string
	s       Settings
	http    *http.Client
	tokens  *tokenSource
	limiter *rate.Limiter
	breaker *gobreaker.CircuitBreaker[*response]
	backoff retry.Backoff
	now     func() time.Time
	log     *slog.Logger

	rebaseNotice sync.Once
	// stateFilter is set once IFS refused a $filter on Objstate: from then
	// on the ready states are checked on our side (see list).
	stateFilter atomic.Bool
	stateNotice sync.Once
}

// New returns a client for the connection named connection, with settings
// from ParseSettings and the decrypted client secret.
func New(connection string, s Settings, clientSecret secrets.Value, o Options) (*Client, error) {
	if clientSecret.Empty() {
		return nil, fmt.Errorf("ifs connection %q: client_secret is empty", connection)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Backoff.Attempts < 1 {
		o.Backoff = retry.DefaultBackoff
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	hc := &http.Client{Timeout: s.RequestTimeout}
	if o.HTTPClient != nil {
		copied := *o.HTTPClient
		hc = &copied
		if hc.Timeout == 0 {
			hc.Timeout = s.RequestTimeout
		}
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = otelhttp.NewTransport(base)
	if o.Limiter == nil {
		o.Limiter = tenantLimiter(s.BaseURL, s.RequestsPerMinute)
	}
	bo := o.Breaker
	if bo.IsSuccessful == nil {
		// A request abandoned by its caller says nothing about IFS's health.
		bo.IsSuccessful = func(err error) bool { return err == nil || errors.Is(err, context.Canceled) }
	}
	return &Client{
		name: connection,
		s:    s,
		http: hc,
		tokens: &tokenSource{
			clientID: s.ClientID,
			secret:   clientSecret,
			tokenURL: s.TokenURL,
			scopes:   strings.Fields(s.Scope),
			maxAge:   s.TokenMaxAge,
			http:     hc,
			now:      o.Now,
		},
		limiter: o.Limiter,
		breaker: breaker.New[*response]("ifs/"+connection, bo),
		backoff: o.Backoff,
		now:     o.Now,
		log:     o.Log,
	}, nil
}

// Settings returns the connection's settings.
func (c *Client) Settings() Settings { return c.s }

// BreakerOpen reports whether the circuit breaker currently refuses calls.
func (c *Client) BreakerOpen() bool { return c.breaker.State() == gobreaker.StateOpen }

// tenants shares one limiter per IFS tenant (base URL) within the process,
// so several connections to the same tenant stay under its budget together.
var tenants = struct {
	sync.Mutex
	m map[string]*rate.Limiter
}{m: map[string]*rate.Limiter{}}

func tenantLimiter(baseURL string, perMinute int) *rate.Limiter {
	key := strings.ToLower(baseURL)
	tenants.Lock()
	defer tenants.Unlock()
	if l, ok := tenants.m[key]; ok {
		return l
	}
	l := rate.NewLimiter(rate.Limit(float64(perMinute)/60), max(1, perMinute/60))
	tenants.m[key] = l
	return l
}

// request is one OData call.
type request struct {
	method  string
	url     string
	ifMatch string
	body    []byte
	what    string // short description for errors, e.g. "list CustomerInfoSet"
	// once marks a request that must not be repeated once it may have
	// reached IFS (a create, which no If-Match guards): after a network
	// error or a 5xx it fails as ErrUnavailable, and the caller's look-up
	// finds what it created, if anything, when it tries again. 401 and
	// 429 are still retried: IFS did not act on them.
	once bool
}

// response is a fully read answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// maxBody bounds what is read of one answer; a full page of 5000 wide rows
// stays well below it.
const maxBody = 128 << 20

const acceptJSON = "application/json;odata.metadata=minimal;IEEE754Compatible=true"

// do sends req until it succeeds, fails for good, or its attempts are spent:
// 429, 5xx and network errors are retried with backoff (Retry-After
// honoured); a 401 fetches a fresh token and retries once. Retrying a write
// is safe because writes carry If-Match: if a lost answer hid a success,
// the retry meets a changed ETag (412) instead of writing twice.
func (c *Client) do(ctx context.Context, req request) (*response, error) {
	refreshed := false
	for attempt := 1; ; attempt++ {
		if err := c.limiter.Wait(ctx); err != nil {
			return nil, fmt.Errorf("ifs %s: %w", req.what, err)
		}
		var used *oauth2.Token
		resp, err := c.breaker.Execute(func() (*response, error) {
			tok, err := c.tokens.token(ctx)
			if err != nil {
				return nil, err
			}
			used = tok
			return c.send(ctx, req, tok.AccessToken)
		})
		if err == nil && resp.status == http.StatusUnauthorized && !refreshed {
			// The token expired early or was revoked: a fresh one, once.
			c.tokens.invalidate(used)
			refreshed = true
			attempt--
			continue
		}
		if err == nil && resp.status < 300 {
			return resp, nil
		}
		var header http.Header
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("ifs %s: %w", req.what, context.Cause(ctx))
		case breaker.IsOpen(err):
			return nil, fmt.Errorf("ifs %s: %w: %w", req.what, ErrUnavailable, err)
		case permanent(err):
			// The token endpoint refused the credentials or the request.
			return nil, fmt.Errorf("ifs %s: %w", req.what, err)
		case err != nil && req.once && used != nil:
			// The request left with a token, so it may have been acted on.
			return nil, fmt.Errorf("ifs %s: %w: %w", req.what, ErrUnavailable, err)
		case err != nil:
			// Network error, 5xx (send returns them as errors so the
			// breaker counts them), or a transient token failure.
			if resp != nil {
				header = resp.header
			}
		case resp.status == http.StatusTooManyRequests:
			header = resp.header
			err = parseError(resp.status, resp.body)
		default:
			return nil, fmt.Errorf("ifs %s: %w", req.what, parseError(resp.status, resp.body))
		}
		if attempt >= c.backoff.Attempts {
			return nil, fmt.Errorf("ifs %s: giving up after %d attempts: %w: %w", req.what, attempt, ErrUnavailable, err)
		}
		wait := c.backoff.Delay(attempt - 1)
		if d, ok := retry.After(header, c.now()); ok {
			// At least what IFS asked for, plus a little jitter so clients
			// told the same instant do not return in lockstep.
			wait = d + c.backoff.Delay(0)
		}
		if err := retry.Sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("ifs %s: waiting to retry: %w", req.what, err)
		}
	}
}

// permanent reports whether err is an IFS answer that retrying cannot
// change (a 4xx other than 429).
func permanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests
}

// send makes one HTTP exchange. A 5xx answer is returned together with an
// error so that the breaker counts it.
func (c *Client) send(ctx context.Context, req request, accessToken string) (*response, error) {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, req.url, body)
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Authorization", "Bearer "+accessToken)
	hr.Header.Set("Accept", acceptJSON)
	hr.Header.Set("OData-MaxVersion", "4.0")
	hr.Header.Set("User-Agent", "ml-connector-ifscloud")
	if req.body != nil {
		hr.Header.Set("Content-Type", "application/json;IEEE754Compatible=true")
	}
	if req.ifMatch != "" {
		hr.Header.Set("If-Match", req.ifMatch)
	}
	res, err := c.http.Do(hr)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if len(data) > maxBody {
		return nil, fmt.Errorf("answer larger than %d bytes", maxBody)
	}
	r := &response{status: res.StatusCode, header: res.Header, body: data}
	if res.StatusCode >= 500 {
		return r, parseError(res.StatusCode, data)
	}
	return r, nil
}

// resolve turns a nextLink, absolute or relative, into a URL on the
// connection's base URL. Behind a proxy IFS may name its own internal host
// (and path root) in the link: the part from the projection API path on is
// kept and rebased onto base_url, so the request, and the bearer token,
// only ever go to the configured host. A link outside the projection API
// is refused.
func (c *Client) resolve(link string) (string, error) {
	api := c.s.BaseURL + c.s.APIPath + "/"
	base, err := url.Parse(api)
	if err != nil {
		return "", err
	}
	u, err := base.Parse(link)
	if err != nil {
		return "", fmt.Errorf("ifs: bad nextLink %q: %w", link, err)
	}
	if strings.EqualFold(u.Host, base.Host) && u.Scheme == base.Scheme && strings.HasPrefix(u.EscapedPath(), base.EscapedPath()) {
		return u.String(), nil
	}
	_, rest, found := strings.Cut(u.EscapedPath(), c.s.APIPath+"/")
	if !found || u.User != nil || strings.Contains(rest, "..") {
		return "", fmt.Errorf("ifs: nextLink %q leaves %s%s: %w", link, base.Host, c.s.APIPath, ErrInvalid)
	}
	rebased, err := url.Parse(api + rest)
	if err != nil {
		return "", fmt.Errorf("ifs: bad nextLink %q: %w", link, err)
	}
	rebased.RawQuery = u.RawQuery
	c.rebaseNotice.Do(func() {
		c.log.Warn("ifs nextLink names another host; following it on the configured base URL",
			"connection", c.name, "link_host", u.Host, "base_url", c.s.BaseURL)
	})
	return rebased.String(), nil
}
