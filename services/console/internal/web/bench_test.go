package web_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/services/console/internal/session"
	"github.com/ml-connector/ml-connector/services/console/internal/views"
	"github.com/ml-connector/ml-connector/services/console/internal/web"
	"github.com/ml-connector/ml-connector/services/console/users"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

// benchConsole is a signed-in client of a console over a database holding
// 1,000,000 collections in 2 connections and 4 companies (0.5% failed,
// 1% in flight, the rest collected) and 10,000 open queue items: the 5,000
// failed payments and 5,000 invalid-invoice exceptions.
func benchConsole(b *testing.B) (*http.Client, string) {
	b.Helper()
	ctx := context.Background()
	db := testsupport.Pool(b)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keys, _ := secrets.NewKeyring(key)
	conns := connections.NewStore(db, keys)
	for _, n := range []string{"ifs-acme", "ifs-beta"} {
		if _, err := conns.Add(ctx, connections.New{Name: n, Kind: connections.KindIFS, Actor: "bench",
			Settings: map[string]any{"base_url": "https://x.example", "client_id": "c", "company_codes": []any{"10", "20"}},
			Secrets:  map[string]secrets.Value{"client_secret": secrets.NewValue("s")}}); err != nil {
			b.Fatal(err)
		}
	}
	for _, sql := range []string{
		`INSERT INTO collections (erp, connection_id, company, invoice_id, invoice_no, customer_id, kind, amount_minor, currency,
			state, gc_payment_id, idempotency_key, failure_cause, updated_at)
		 SELECT 'ifs', c.id, (ARRAY['10','20'])[1 + g % 2], 'INV-' || g, 'INV-' || g, 'C' || (g % 5000), 'payment',
		        1000 + g % 100000, (ARRAY['GBP','EUR'])[1 + g % 2],
		        CASE WHEN g % 200 = 0 THEN 'failed' WHEN g % 100 = 1 THEN 'submitted' ELSE 'paid_out' END,
		        'PM' || g, 'k' || g, CASE WHEN g % 200 = 0 THEN 'insufficient_funds' END,
		        now() - (g % 1000) * interval '1 hour'
		 FROM generate_series(1, 1000000) g
		 JOIN connections c ON c.name = CASE WHEN g % 4 < 2 THEN 'ifs-acme' ELSE 'ifs-beta' END`,
		`INSERT INTO exceptions (kind, aggregate_type, aggregate_id, reason, created_at)
		 SELECT 'invalid_invoice', 'invoice', 'ifs-acme:10:BAD-' || g, 'amount: more decimals than the currency allows',
		        now() - g * interval '1 minute'
		 FROM generate_series(1, 5000) g`,
		`ANALYZE`,
	} {
		if _, err := db.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	us := users.NewStore(db)
	if _, err := us.Add(ctx, users.New{Name: "ann", Role: users.Operator, Password: secrets.NewValue(opPass), Actor: "bench"}); err != nil {
		b.Fatal(err)
	}
	desk := operator.NewDesk(db, conns, nil)
	v := views.New(db, desk)
	refresher := views.NewRefresher(v, time.Minute)
	start := time.Now()
	if _, err := refresher.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("one overview recount (in the background, every CONSOLE_OVERVIEW_REFRESH): %s", time.Since(start).Round(time.Millisecond))
	srv, err := web.New(web.Config{LoginAttempts: 5, LoginWindow: time.Minute, Overview: refresher},
		slog.New(slog.NewTextHandler(io.Discard, nil)), db, us, session.NewStore(db, time.Hour), desk, conns, v)
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewTLSServer(srv.Handler())
	b.Cleanup(ts.Close)
	jar, _ := cookiejar.New(nil)
	c := ts.Client()
	c.Jar = jar
	resp, err := c.Get(ts.URL + "/login")
	if err != nil {
		b.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp, err = c.PostForm(ts.URL+"/login", url.Values{"name": {"ann"}, "password": {opPass}, "login_token": {field(string(page), "login_token")}})
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("sign in: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	return c, ts.URL
}

// benchPage requests path b.N times and reports p50 and p99 latency.
func benchPage(b *testing.B, c *http.Client, base, path, want string) {
	b.Helper()
	var took []time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		resp, err := c.Get(base + path)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took = append(took, time.Since(start))
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			b.Fatalf("GET %s: %d, lacks %q", path, resp.StatusCode, want)
		}
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkPages measures the overview and the exceptions queue as a
// signed-in browser gets them (HTML over TLS on loopback).
func BenchmarkPages(b *testing.B) {
	c, base := benchConsole(b)
	b.Run("overview", func(b *testing.B) { benchPage(b, c, base, "/", "ifs-beta / 20") })
	b.Run("exceptions", func(b *testing.B) { benchPage(b, c, base, "/exceptions", "10000 matching") })
	b.Run("exceptions-filtered", func(b *testing.B) {
		benchPage(b, c, base, "/exceptions?connection=ifs-beta&company=20&reason=insufficient_funds&age=24h", "matching")
	})
	b.Run("exceptions-page-100", func(b *testing.B) { benchPage(b, c, base, "/exceptions?offset=5000", "10000 matching") })
	b.Run("exceptions-page-101-keyset", func(b *testing.B) {
		benchPage(b, c, base, "/exceptions?"+cursorAfter(b, c, base, 5000), "10000 matching")
	})
}

// cursorAfter is the query of the page that follows the first n items, as
// the page's "Older" link has it (read once, untimed, through the offset).
func cursorAfter(b *testing.B, c *http.Client, base string, n int) string {
	b.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/exceptions?limit=50&offset="+strconv.Itoa(n-50), nil)
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Next *struct {
			Before time.Time `json:"before"`
			Ref    string    `json:"before_ref"`
		} `json:"next"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || p.Next == nil {
		b.Fatalf("no cursor after %d items: %v", n, err)
	}
	return url.Values{"before": {p.Next.Before.Format(time.RFC3339Nano)}, "before_ref": {p.Next.Ref}}.Encode()
}
