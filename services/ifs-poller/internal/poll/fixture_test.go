package poll_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/platform/watermark"
	"github.com/ml-connector/ml-connector/services/ifs-poller/internal/poll"
)

const connName = "ifs-test"

// fixture is a simulator, real JetStream, real Postgres with a registered
// connection, and an IFS client for it.
type fixture struct {
	tb     testing.TB
	sim    *ifssim.Sim
	srv    *httptest.Server
	bus    *bus.Bus
	js     jetstream.JetStream
	pool   *pgxpool.Pool
	conn   connections.Connection
	client *ifscloud.Client
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func setup(tb testing.TB, simCfg ifssim.Config, settings map[string]any, opts ifscloud.Options) *fixture {
	tb.Helper()
	ctx := context.Background()
	f := &fixture{tb: tb, sim: ifssim.New(simCfg)}
	f.srv = httptest.NewServer(f.sim)
	tb.Cleanup(f.srv.Close)

	nc := testsupport.StartJetStream(tb).Connect()
	b, err := bus.New(nc, bus.DefaultConfig(), quiet())
	if err != nil {
		tb.Fatal(err)
	}
	if err := b.Ensure(ctx); err != nil {
		tb.Fatal(err)
	}
	f.bus, f.js = b, b.JetStream()

	f.pool = testsupport.Pool(tb)
	keys, err := secrets.NewKeyring([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		tb.Fatal(err)
	}
	raw := map[string]any{
		"base_url":            f.srv.URL,
		"client_id":           "mlc",
		"company_codes":       []any{"10"},
		"requests_per_minute": float64(600000),
	}
	for k, v := range settings {
		raw[k] = v
	}
	f.conn, err = connections.NewStore(f.pool, keys).Add(ctx, connections.New{
		Name: connName, Kind: connections.KindIFS, Settings: raw,
		Secrets: map[string]secrets.Value{"client_secret": secrets.NewValue("secret")}, Actor: "test",
	})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := ifscloud.ParseSettings(f.conn.Settings)
	if err != nil {
		tb.Fatal(err)
	}
	if opts.Backoff.Attempts == 0 {
		opts.Backoff = retry.Backoff{Base: time.Millisecond, Max: 10 * time.Millisecond, Attempts: 6}
	}
	if f.client, err = ifscloud.New(connName, s, secrets.NewValue("secret"), opts); err != nil {
		tb.Fatal(err)
	}
	return f
}

func (f *fixture) poller(wm poll.Watermarks) *poll.Poller {
	f.tb.Helper()
	if wm == nil {
		wm = f.state()
	}
	m, err := poll.NewMetrics(otel.Meter("test"))
	if err != nil {
		f.tb.Fatal(err)
	}
	s := f.client.Settings()
	return &poll.Poller{
		ConnectionID: f.conn.ID, Connection: connName, Companies: s.CompanyCodes,
		Source: f.client, Publisher: f.bus, Watermarks: wm, Metrics: m, Log: quiet(),
	}
}

// state is the poll state of the fixture's database, with the default
// overlap window.
func (f *fixture) state() *poll.PollState {
	f.tb.Helper()
	marks, err := watermark.New(f.pool, time.Minute)
	if err != nil {
		f.tb.Fatal(err)
	}
	return &poll.PollState{Marks: marks}
}

// counts returns the number of messages stored per subject of mlc.erp.ifs.>.
func (f *fixture) counts() map[string]uint64 {
	f.tb.Helper()
	st, err := f.js.Stream(context.Background(), bus.StreamERP)
	if err != nil {
		f.tb.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter("mlc.erp.ifs.>"))
	if err != nil {
		f.tb.Fatal(err)
	}
	if info.State.Subjects == nil {
		return map[string]uint64{}
	}
	return info.State.Subjects
}

// messages reads every message stored on subject, in order.
func (f *fixture) messages(subject string) []jetstream.Msg {
	f.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want := int(f.counts()[subject])
	cons, err := f.js.OrderedConsumer(ctx, bus.StreamERP, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		f.tb.Fatal(err)
	}
	var out []jetstream.Msg
	for len(out) < want {
		batch, err := cons.Fetch(want-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			f.tb.Fatal(err)
		}
		for m := range batch.Messages() {
			out = append(out, m)
		}
		if batch.Error() != nil {
			f.tb.Fatal(batch.Error())
		}
	}
	return out
}

// queries returns the $filter of every collection read the simulator got
// on entity set set.
func (f *fixture) queries(set string) []string {
	var out []string
	for _, r := range f.sim.Requests() {
		if strings.HasSuffix(r.Path, "/"+set) {
			q, _ := url.ParseQuery(r.Query)
			out = append(out, q.Get("$filter"))
		}
	}
	return out
}

var base = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

func invoice(company string, id int64, state string, modified time.Time) ifssim.Invoice {
	return ifssim.Invoice{
		Company: company, InvoiceID: id, InvoiceNo: "CI-" + company + "-" + strconv.FormatInt(id, 10), CustomerID: "C1",
		Currency: "EUR", State: state, GrossAmount: "120.00", OpenAmount: "100.10",
		InvoiceDate: "2026-03-01", DueDate: "2026-04-01", PayTermID: "30", Modified: modified,
	}
}
