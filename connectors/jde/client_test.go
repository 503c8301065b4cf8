package jde_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	"github.com/ml-connector/ml-connector/platform/breaker"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport/fake"
)

var start = time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC)

const password = "s3cr3t-Pa55word!"

// env is a simulator and a client pointed at it.
type env struct {
	sim    *jdesim.Server
	srv    *httptest.Server
	client *jde.Client
	clock  *jdesim.Clock
	logs   *fake.Log
}

func newEnv(t *testing.T, opts jdesim.Options, tune func(*jde.Config)) *env {
	t.Helper()
	clock := jdesim.NewClock(start)
	opts.Clock = clock
	opts.Password = password
	sim := jdesim.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	logs := &fake.Log{}
	cfg := jde.Config{
		Name:        "jde-test",
		BaseURL:     srv.URL,
		Username:    "JDE",
		Password:    secrets.NewValue(password),
		Environment: "JDV920",
		Now:         clock.Now,
		Backoff:     retry.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 4},
		Log:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if tune != nil {
		tune(&cfg)
	}
	c, err := jde.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{sim: sim, srv: srv, client: c, clock: clock, logs: logs}
}

// addInvoices adds n open USD invoices numbered from 1001 in company 00001.
func (e *env) addInvoices(n int) {
	invs := make([]jdesim.Invoice, n)
	for i := range invs {
		invs[i] = jdesim.Invoice{
			DOC: int64(1001 + i), DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, CO: "00001",
			AG: 10000 + int64(i), AAP: 10000 + int64(i), CRCD: "USD", DDJ: jdesim.Date(2026, 2, 28),
			DIVJ: jdesim.Date(2026, 1, 29), MCU: "M30", PTC: "N30", PST: "A",
		}
	}
	e.sim.AddInvoices(invs...)
}

// docs browses F03B11 and returns the document numbers in order.
func (e *env) docs(ctx context.Context, q jde.Query) ([]string, error) {
	var out []string
	if q.Table == "" {
		q.Table = "F03B11"
	}
	if q.Columns == nil {
		q.Columns = []string{"DOC", "DCT", "KCO", "SFX"}
	}
	err := e.client.Browse(ctx, q, func(rows []jde.Row) error {
		for _, r := range rows {
			out = append(out, r.Text("F03B11", "DOC"))
		}
		return nil
	})
	return out, err
}

func TestLoginHeadersAndLogout(t *testing.T) {
	e := newEnv(t, jdesim.Options{}, func(c *jde.Config) { c.DeviceName = "mlc-test-device" })
	e.addInvoices(3)
	ctx := context.Background()
	got, err := e.docs(ctx, jde.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("rows = %v", got)
	}
	st := e.sim.Stats()
	if st.Logins != 1 || st.ActiveSessions != 1 || st.InvalidTokens != 0 {
		t.Fatalf("stats after browse = %+v", st)
	}
	f, err := e.client.DateFormat(ctx)
	if err != nil || f != (jde.DateFormat{Order: "MDE", Separator: "/"}) {
		t.Fatalf("DateFormat = %v, %v", f, err)
	}
	e.client.Close(ctx)
	if st := e.sim.Stats(); st.Logouts != 1 || st.ActiveSessions != 0 {
		t.Fatalf("stats after Close = %+v", st)
	}
}

// The simulator binds a session to its device: a client that dropped the
// jde-AIS-Auth-Device header would get 444 on every call. The client logs
// in again once and then gives up with ErrInvalidToken.
func TestPersistent444IsRetriedOnce(t *testing.T) {
	e := newEnv(t, jdesim.Options{}, func(c *jde.Config) {
		c.Transport = dropHeader{name: "jde-AIS-Auth-Device", next: http.DefaultTransport}
	})
	e.addInvoices(1)
	_, err := e.docs(context.Background(), jde.Query{})
	if !errors.Is(err, jde.ErrInvalidToken) {
		t.Fatalf("err = %v, want ErrInvalidToken", err)
	}
	if st := e.sim.Stats(); st.Logins != 2 || st.InvalidTokens != 2 || st.DataRequests != 0 {
		t.Fatalf("stats = %+v, want two logins and two refused calls", st)
	}
}

type dropHeader struct {
	name string
	next http.RoundTripper
}

func (d dropHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Del(d.name)
	return d.next.RoundTrip(r)
}

func TestProactiveRefreshOnClock(t *testing.T) {
	tests := []struct {
		name    string
		refresh time.Duration
	}{
		{name: "default 50 minutes", refresh: 0},
		{name: "configured 20 minutes", refresh: 20 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, jdesim.Options{SessionLifetime: 60 * time.Minute}, func(c *jde.Config) { c.RefreshEvery = tt.refresh })
			e.addInvoices(1)
			every := tt.refresh
			if every == 0 {
				every = 50 * time.Minute
			}
			ctx := context.Background()
			call := func() {
				t.Helper()
				if _, err := e.docs(ctx, jde.Query{}); err != nil {
					t.Fatal(err)
				}
			}
			call()
			e.clock.Advance(every - time.Second)
			call()
			if st := e.sim.Stats(); st.Logins != 1 {
				t.Fatalf("logins before %v = %d, want 1", every, st.Logins)
			}
			e.clock.Advance(time.Second)
			call()
			st := e.sim.Stats()
			if st.Logins != 2 || st.Logouts != 1 || st.ActiveSessions != 1 || st.InvalidTokens != 0 {
				t.Fatalf("after %v: stats = %+v; want a second login, the old session logged out, no 444", every, st)
			}
		})
	}
}

func TestReloginAfterRestartAndExpiry(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(e *env)
	}{
		{name: "AIS restart", break_: func(e *env) { e.sim.Restart() }},
		{name: "sessions expired", break_: func(e *env) { e.sim.ExpireSessions() }},
		// AIS's lifetime (30 min) is shorter than the client's refresh.
		{name: "lifetime shorter than refresh", break_: func(e *env) { e.clock.Advance(31 * time.Minute) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, jdesim.Options{SessionLifetime: 30 * time.Minute}, nil)
			e.addInvoices(2)
			ctx := context.Background()
			if _, err := e.docs(ctx, jde.Query{}); err != nil {
				t.Fatal(err)
			}
			tt.break_(e)
			got, err := e.docs(ctx, jde.Query{})
			if err != nil || len(got) != 2 {
				t.Fatalf("after %s: %v, %v", tt.name, got, err)
			}
			if st := e.sim.Stats(); st.Logins != 2 || st.InvalidTokens != 1 {
				t.Fatalf("stats = %+v, want one 444 and one re-login", st)
			}
		})
	}
}

func TestPagingFollowsNextLinks(t *testing.T) {
	e := newEnv(t, jdesim.Options{}, func(c *jde.Config) { c.PageSize = 100 })
	e.addInvoices(1234)
	pages := 0
	seen := map[string]bool{}
	err := e.client.Browse(context.Background(), jde.Query{Table: "F03B11", Columns: []string{"DOC"}}, func(rows []jde.Row) error {
		pages++
		if len(rows) > 100 {
			t.Errorf("page %d has %d rows", pages, len(rows))
		}
		for _, r := range rows {
			doc := r.Text("F03B11", "DOC")
			if seen[doc] {
				t.Errorf("row %s twice", doc)
			}
			seen[doc] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if pages != 13 || len(seen) != 1234 {
		t.Fatalf("pages = %d, rows = %d; want 13 and 1234", pages, len(seen))
	}
	st := e.sim.Stats()
	if st.NextPages != 12 || st.DataRequests != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if st.TokensInURL != 0 {
		t.Fatalf("%d requests carried the session token in the URL", st.TokensInURL)
	}
}

func TestBrowseStopsOnCallbackError(t *testing.T) {
	e := newEnv(t, jdesim.Options{}, func(c *jde.Config) { c.PageSize = 10 })
	e.addInvoices(50)
	stop := errors.New("enough")
	calls := 0
	err := e.client.Browse(context.Background(), jde.Query{Table: "F03B11", Columns: []string{"DOC"}}, func([]jde.Row) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 || e.sim.Stats().NextPages != 0 {
		t.Fatalf("err = %v, calls = %d, stats = %+v", err, calls, e.sim.Stats())
	}
}

func TestConditions(t *testing.T) {
	// No company constants: multi-currency off, every amount in CRCD.
	e := newEnv(t, jdesim.Options{Companies: map[string]string{}}, nil)
	e.sim.AddInvoices(
		jdesim.Invoice{DOC: 1, DCT: "RI", KCO: "00001", SFX: "001", AAP: 1000, CRCD: "USD", DDJ: jdesim.Date(2026, 1, 1)},
		jdesim.Invoice{DOC: 2, DCT: "RI", KCO: "00002", SFX: "001", AAP: 0, CRCD: "USD", DDJ: jdesim.Date(2026, 2, 1)},
		jdesim.Invoice{DOC: 3, DCT: "RM", KCO: "00001", SFX: "001", AAP: -500, CRCD: "USD", DDJ: jdesim.Date(2026, 3, 1)},
		jdesim.Invoice{DOC: 4, DCT: "RI", KCO: "00001", SFX: "002", AAP: 5, CRCD: "JPY", DDJ: jdesim.Date(2025, 12, 31)},
	)
	tests := []struct {
		conds []jde.Condition
		want  string
	}{
		{nil, "1,2,3,4"},
		{[]jde.Condition{{Column: "KCO", Op: jde.Equal, Value: "00001"}}, "1,3,4"},
		{[]jde.Condition{{Column: "DCT", Op: jde.NotEqual, Value: "RI"}}, "3"},
		{[]jde.Condition{{Column: "DOC", Op: jde.Greater, Value: "2"}}, "3,4"},
		{[]jde.Condition{{Column: "DOC", Op: jde.Less, Value: "2"}}, "1"},
		{[]jde.Condition{{Column: "DOC", Op: jde.GreaterEqual, Value: "2"}}, "2,3,4"},
		{[]jde.Condition{{Column: "DOC", Op: jde.LessEqual, Value: "2"}}, "1,2"},
		{[]jde.Condition{{Column: "DDJ", Op: jde.GreaterEqual, Value: "126032"}}, "2,3"},
		{[]jde.Condition{{Column: "DDJ", Op: jde.Less, Value: "01/01/2026"}}, "4"},
		{[]jde.Condition{{Column: "AAP", Op: jde.NotEqual, Value: "0"}}, "1,3,4"},
		{[]jde.Condition{{Column: "AAP", Op: jde.Greater, Value: "0"}}, "1,4"},
		{[]jde.Condition{{Column: "AAP", Op: jde.Equal, Value: "10.00"}}, "1"},
		{[]jde.Condition{{Column: "AAP", Op: jde.Equal, Value: "5"}}, "4"}, // JPY 5, not 0.05
		// MATCH_ALL: every condition must hold.
		{[]jde.Condition{{Column: "KCO", Op: jde.Equal, Value: "00001"}, {Column: "DCT", Op: jde.Equal, Value: "RI"}, {Column: "SFX", Op: jde.Equal, Value: "001"}}, "1"},
	}
	for _, tt := range tests {
		got, err := e.docs(context.Background(), jde.Query{Conditions: tt.conds})
		if err != nil {
			t.Errorf("%v: %v", tt.conds, err)
			continue
		}
		if strings.Join(got, ",") != tt.want {
			t.Errorf("%v = %v, want %s", tt.conds, got, tt.want)
		}
	}
}

func TestBadQueriesAreRefused(t *testing.T) {
	e := newEnv(t, jdesim.Options{}, nil)
	ctx := context.Background()
	tests := []struct {
		name   string
		q      jde.Query
		aisErr bool // refused by AIS rather than by the client
	}{
		{name: "no table", q: jde.Query{Columns: []string{"DOC"}}},
		{name: "no columns", q: jde.Query{Table: "F03B11"}},
		{name: "bad column", q: jde.Query{Table: "F03B11", Columns: []string{"DOC;DROP"}}},
		{name: "bad operator", q: jde.Query{Table: "F03B11", Columns: []string{"DOC"}, Conditions: []jde.Condition{{Column: "DOC", Op: "LIKE", Value: "1"}}}},
		{name: "unknown table", q: jde.Query{Table: "F9999", Columns: []string{"DOC"}}, aisErr: true},
		{name: "unknown column", q: jde.Query{Table: "F03B11", Columns: []string{"NOPE"}}, aisErr: true},
		{name: "bad literal", q: jde.Query{Table: "F03B11", Columns: []string{"DOC"}, Conditions: []jde.Condition{{Column: "DOC", Op: jde.Equal, Value: "abc"}}}, aisErr: true},
	}
	for _, tt := range tests {
		err := e.client.Browse(ctx, tt.q, func([]jde.Row) error { return nil })
		if !errors.Is(err, jde.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tt.name, err)
		}
		var aisErr *jde.Error
		if errors.As(err, &aisErr) != tt.aisErr {
			t.Errorf("%s: AIS error = %v, want %v", tt.name, aisErr, tt.aisErr)
		}
		if tt.aisErr && (aisErr.HTTPStatus != 400 || aisErr.Message == "" || aisErr.Status != "ERROR") {
			t.Errorf("%s: AIS error fields = %+v", tt.name, aisErr)
		}
	}
}

func TestResultSetLost(t *testing.T) {
	tests := []struct {
		name     string
		midway   func(e *env)
		reLogins int
	}{
		{name: "AIS restart", midway: func(e *env) { e.sim.Restart() }, reLogins: 1},
		{name: "result set timeout", midway: func(e *env) { e.clock.Advance(61 * time.Second) }},
		{name: "5xx on next page", midway: func(e *env) { e.sim.SetFaults(jdesim.Faults{FailNext: 1}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, jdesim.Options{}, func(c *jde.Config) { c.PageSize = 10 })
			e.addInvoices(30)
			ctx := context.Background()
			pages := 0
			err := e.client.Browse(ctx, jde.Query{Table: "F03B11", Columns: []string{"DOC"}}, func([]jde.Row) error {
				pages++
				if pages == 1 {
					tt.midway(e)
				}
				return nil
			})
			if !errors.Is(err, jde.ErrResultSetLost) || pages != 1 {
				t.Fatalf("err = %v after %d pages, want ErrResultSetLost after 1", err, pages)
			}
			// The next-page call is never repeated.
			if st := e.sim.Stats(); st.NextPages > 1 || st.Logins != 1+tt.reLogins {
				t.Fatalf("stats = %+v", st)
			}
			// Rerunning the query works at once.
			got, err := e.docs(ctx, jde.Query{})
			if err != nil || len(got) != 30 {
				t.Fatalf("rerun: %d rows, %v", len(got), err)
			}
		})
	}
}

func TestTransientFailuresAreRetried(t *testing.T) {
	tests := []struct {
		name   string
		faults jdesim.Faults
	}{
		{name: "503 twice", faults: jdesim.Faults{FailNext: 2}},
		{name: "500 once", faults: jdesim.Faults{FailNext: 1, FailStatus: 500}},
		{name: "429 with Retry-After", faults: jdesim.Faults{RateLimitNext: 1, RetryAfter: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, jdesim.Options{}, nil)
			e.addInvoices(2)
			e.sim.SetFaults(tt.faults)
			began := time.Now()
			got, err := e.docs(context.Background(), jde.Query{})
			if err != nil || len(got) != 2 {
				t.Fatalf("%v, %v", got, err)
			}
			if tt.faults.RetryAfter > 0 && time.Since(began) < tt.faults.RetryAfter {
				t.Fatalf("retried before Retry-After")
			}
			if !strings.Contains(e.logs.String(), "will retry") {
				t.Fatalf("retry not logged")
			}
		})
	}
}

func TestBreakerOpensAndGivesUpFast(t *testing.T) {
	e := newEnv(t, jdesim.Options{}, func(c *jde.Config) {
		c.Backoff = retry.Backoff{Base: time.Millisecond, Max: time.Millisecond, Attempts: 2}
		c.Breaker = breaker.Options{Failures: 3, OpenFor: time.Hour}
		c.Name = "breaker-test"
	})
	e.sim.SetFaults(jdesim.Faults{FailNext: 1000})
	ctx := context.Background()
	for range 2 {
		if err := e.client.Ping(ctx); !errors.Is(err, jde.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	}
	before := e.sim.Stats().Requests
	err := e.client.Ping(ctx)
	if !errors.Is(err, jde.ErrUnavailable) || !strings.Contains(err.Error(), "circuit breaker open") {
		t.Fatalf("err = %v, want an open breaker", err)
	}
	if after := e.sim.Stats().Requests; after != before {
		t.Fatalf("an open breaker still sent %d requests", after-before)
	}
}

func TestOrchestrationErrorsAreTyped(t *testing.T) {
	e := newEnv(t, jdesim.Options{}, nil)
	ctx := context.Background()
	err := e.client.Orchestrate(ctx, "NoSuchOrchestration", map[string]string{"ExternalReference": "x"}, nil)
	var aisErr *jde.Error
	if !errors.Is(err, jde.ErrNotFound) || !errors.As(err, &aisErr) || !strings.Contains(aisErr.Message, "not found") {
		t.Fatalf("unknown orchestration: %v", err)
	}
	err = e.client.Orchestrate(ctx, "MLC_PostReceipt", map[string]string{"ExternalReference": "x"}, nil)
	if !errors.Is(err, jde.ErrInvalid) || !errors.As(err, &aisErr) || aisErr.Exception == "" {
		t.Fatalf("bad inputs: %v", err)
	}
	if err := e.client.Orchestrate(ctx, "../etc", nil, nil); !errors.Is(err, jde.ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
}

// The password and the session token appear in no error, log line or
// span, whatever happens.
func TestSecretsNeverLeak(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	tokens := &tokenRecorder{next: http.DefaultTransport}
	e := newEnv(t, jdesim.Options{}, func(c *jde.Config) { c.PageSize = 5; c.Transport = tokens })
	e.addInvoices(12)
	ctx := context.Background()
	if _, err := e.docs(ctx, jde.Query{}); err != nil {
		t.Fatal(err)
	}
	e.sim.Restart()
	if _, err := e.docs(ctx, jde.Query{}); err != nil {
		t.Fatal(err)
	}
	e.client.Close(ctx)

	bad, err := jde.New(jde.Config{Name: "bad", BaseURL: e.srv.URL, Username: "JDE", Password: secrets.NewValue("wrong-" + password),
		Log: slog.New(slog.NewJSONHandler(e.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Ping(ctx)
	if !errors.Is(err, jde.ErrUnauthorized) {
		t.Fatalf("wrong password: %v", err)
	}
	var texts []string
	texts = append(texts, err.Error(), e.logs.String(), fmt.Sprintf("%+v %#v", e.client, bad))
	for _, s := range rec.Ended() {
		texts = append(texts, s.Name())
		for _, a := range s.Attributes() {
			texts = append(texts, a.Value.String())
		}
	}
	if len(rec.Ended()) == 0 {
		t.Fatal("no spans recorded; otelhttp is not in the path")
	}
	secretsUsed := append(tokens.seen(), password)
	if len(secretsUsed) < 3 {
		t.Fatalf("tokens used = %d, want at least two sessions", len(secretsUsed)-1)
	}
	for _, text := range texts {
		for _, secret := range secretsUsed {
			if strings.Contains(text, secret) {
				t.Fatalf("secret leaked into %q", text)
			}
		}
	}
}

// tokenRecorder remembers every session token the client sent.
type tokenRecorder struct {
	next   http.RoundTripper
	mu     sync.Mutex
	tokens map[string]bool
}

func (r *tokenRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if tok := req.Header.Get("jde-AIS-Auth"); tok != "" {
		r.mu.Lock()
		if r.tokens == nil {
			r.tokens = map[string]bool{}
		}
		r.tokens[tok] = true
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

func (r *tokenRecorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for tok := range r.tokens {
		out = append(out, tok)
	}
	return out
}

func TestNewValidatesConfig(t *testing.T) {
	for _, cfg := range []jde.Config{
		{BaseURL: "ais.example.com", Username: "u", Password: secrets.NewValue("p")},
		{BaseURL: "ftp://ais.example.com", Username: "u", Password: secrets.NewValue("p")},
		{BaseURL: "https://ais.example.com", Password: secrets.NewValue("p")},
		{BaseURL: "https://ais.example.com", Username: "u"},
		{BaseURL: "https://ais.example.com", Username: "u", Password: secrets.NewValue("p"), PageSize: -1},
	} {
		if _, err := jde.New(cfg); !errors.Is(err, jde.ErrInvalid) {
			t.Errorf("New(%+v) = %v, want ErrInvalid", cfg, err)
		}
	}
}

// A browse that runs across the refresh time keeps paging with the
// session that owns its result set; the refresh waits for the next call.
func TestRefreshWaitsForTheBrowseInFlight(t *testing.T) {
	e := newEnv(t, jdesim.Options{SessionLifetime: 60 * time.Minute}, func(c *jde.Config) { c.PageSize = 10 })
	e.addInvoices(30)
	ctx := context.Background()
	if err := e.client.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(50*time.Minute - 10*time.Second)
	pages := 0
	err := e.client.Browse(ctx, jde.Query{Table: "F03B11", Columns: []string{"DOC"}}, func([]jde.Row) error {
		pages++
		e.clock.Advance(20 * time.Second) // within AIS's result set timeout
		return nil
	})
	if err != nil || pages != 3 {
		t.Fatalf("browse across the refresh time: %d pages, %v", pages, err)
	}
	if st := e.sim.Stats(); st.Logins != 1 {
		t.Fatalf("logins during the browse = %d", st.Logins)
	}
	if _, err := e.docs(ctx, jde.Query{}); err != nil {
		t.Fatal(err)
	}
	if st := e.sim.Stats(); st.Logins != 2 || st.Logouts != 1 {
		t.Fatalf("after the browse: %+v, want the refresh", st)
	}
}

// A slow AIS answer counts as a transient failure: the request times out,
// is retried, and the caller gets ErrUnavailable.
func TestSlowAISTimesOut(t *testing.T) {
	e := newEnv(t, jdesim.Options{}, func(c *jde.Config) {
		c.Timeout = 20 * time.Millisecond
		c.Backoff = retry.Backoff{Base: time.Millisecond, Max: time.Millisecond, Attempts: 2}
	})
	e.sim.SetFaults(jdesim.Faults{Latency: 200 * time.Millisecond})
	err := e.client.Ping(context.Background())
	if !errors.Is(err, jde.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if st := e.sim.Stats(); st.Requests != 2 || st.Logins != 0 {
		t.Fatalf("stats = %+v, want two attempts that never completed", st)
	}
}
