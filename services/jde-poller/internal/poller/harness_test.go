package poller_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/platform/watermark"
	"github.com/ml-connector/ml-connector/services/jde-poller/internal/poller"
)

var start = time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC)

// harness is a simulated JDE, a real embedded JetStream and a real,
// migrated Postgres database with one JDE connection row.
type harness struct {
	t        testing.TB
	sim      *jdesim.Server
	clock    *jdesim.Clock
	client   *jde.Client
	bus      *bus.Bus
	pool     *pgxpool.Pool
	connID   int64
	settings jde.Settings
	seq      uint64 // last stream sequence read
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newHarness(t testing.TB, opts jdesim.Options, extra map[string]any) *harness {
	t.Helper()
	h := &harness{t: t, clock: jdesim.NewClock(start)}
	opts.Clock = h.clock
	h.sim = jdesim.New(opts)
	srv := httptest.NewServer(h.sim)
	t.Cleanup(srv.Close)

	raw := map[string]any{
		"base_url": srv.URL, "username": "JDE", "company_codes": []any{"00001"}, "page_size": 100.0,
		"terms_recurrence": map[string]any{"M01": map[string]any{"interval_unit": "monthly", "day_of_month": 1.0}},
		"gl_accounts":      map[string]any{"M30": "M30.1110", "M40": "M40.1110"},
	}
	for k, v := range extra {
		raw[k] = v
	}
	b, _ := json.Marshal(raw)
	var m map[string]any
	_ = json.Unmarshal(b, &m) // as the registry hands settings over: JSON types
	var err error
	if h.settings, err = jde.ParseSettings(m); err != nil {
		t.Fatal(err)
	}
	cfg := h.settings.ClientConfig("jde-test", secrets.NewValue("JDE"))
	cfg.Now, cfg.Log = h.clock.Now, quiet()
	cfg.Backoff = retry.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 4}
	if h.client, err = jde.New(cfg); err != nil {
		t.Fatal(err)
	}

	js := testsupport.StartJetStream(t)
	if h.bus, err = bus.New(js.Connect(), bus.DefaultConfig(), quiet()); err != nil {
		t.Fatal(err)
	}
	if err := h.bus.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.pool = testsupport.Pool(t)
	if err := h.pool.QueryRow(context.Background(),
		`INSERT INTO connections (name, kind, settings) VALUES ('jde-test', 'jde', $1) RETURNING id`, b).Scan(&h.connID); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) config() poller.Config {
	return poller.Config{
		ConnectionID: h.connID, ConnectionName: "jde-test", Settings: h.settings, Source: h.client,
		Publisher: h.bus, DB: h.pool, BatchSize: 100, Now: h.clock.Now, Log: quiet(),
	}
}

func (h *harness) poller(tune func(*poller.Config)) *poller.Poller {
	h.t.Helper()
	cfg := h.config()
	if tune != nil {
		tune(&cfg)
	}
	p, err := poller.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *harness) cycle(p *poller.Poller) poller.Result {
	h.t.Helper()
	res, err := p.Cycle(context.Background())
	if err != nil {
		h.t.Fatalf("cycle: %v", err)
	}
	return res
}

// published is a message read back from MLC_ERP.
type published struct {
	subject, id string
	data        []byte
}

// drain returns the messages stored in MLC_ERP since the last drain.
func (h *harness) drain() []published {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.bus.JetStream().Stream(ctx, bus.StreamERP)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []published
	for ; h.seq < info.State.LastSeq; h.seq++ {
		m, err := s.GetMsg(ctx, h.seq+1)
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, published{subject: m.Subject, id: m.Header.Get(bus.HeaderMsgID), data: m.Data})
	}
	return out
}

func (h *harness) watermark(entity string) watermark.Mark {
	h.t.Helper()
	st, err := (&watermark.Store{DB: h.pool}).Load(context.Background(), h.connID, entity)
	if err != nil {
		h.t.Fatal(err)
	}
	return st.Mark
}

func decode[T proto.Message](t testing.TB, data []byte, msg T) T {
	t.Helper()
	if err := proto.Unmarshal(data, msg); err != nil {
		t.Fatal(err)
	}
	return msg
}

// customer puts a complete customer into the simulator.
func customer(sim *jdesim.Server, an8 int64, name, currency string, companies ...string) {
	sim.PutAddressBook(jdesim.AddressBook{AN8: an8, ALPH: name, AT1: "C", TAXC: "C", LNGP: "E"})
	for _, co := range companies {
		sim.PutCustomerMaster(jdesim.CustomerMaster{AN8: an8, CO: co, TRAR: "N30", RYIN: "D", CRCA: currency})
	}
	sim.PutEmail(jdesim.Email{AN8: an8, ETP: "E", EMAL: "ap@" + name + ".example"})
	sim.PutAddress(jdesim.Address{AN8: an8, EFTB: jdesim.Date(2020, 1, 1), ADD1: "1 High Street", CTY1: "London", ADDZ: "EC1A 1BB", CTR: "GB"})
	sim.PutBankAccount(jdesim.BankAccount{AN8: an8, BKTP: "C", TNST: "200000", CBNK: "55779911", CTR: "GB"})
}

// invoices makes n open GBP invoices of customer an8 in company co,
// numbered from first.
func invoices(co string, an8, first int64, n int) []jdesim.Invoice {
	out := make([]jdesim.Invoice, n)
	for i := range out {
		out[i] = jdesim.Invoice{DOC: first + int64(i), DCT: "RI", KCO: co, SFX: "001", AN8: an8, CO: co,
			AG: 10000 + int64(i), AAP: 10000 + int64(i), CRCD: "GBP", DDJ: jdesim.Date(2026, 3, 1),
			DIVJ: jdesim.Date(2026, 1, 30), MCU: "M30", PTC: "N30", PST: "A"}
	}
	return out
}

// storedAsGiven makes inv a foreign-mode row in currency cur whose amounts
// the simulator stores as they are, with no rate lookup: how a row with a
// currency JDE would never have let in is set up.
func storedAsGiven(inv jdesim.Invoice, cur string) jdesim.Invoice {
	inv.CRCD, inv.CRRM, inv.CRR, inv.ACR, inv.FAP = cur, "F", "1", inv.AG, inv.AAP
	return inv
}

func ids(msgs []published) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		out[stampOnly(m.id)]++
	}
	return out
}

// stampOnly cuts a version (at the end of a message id, or on its own) to
// its stamp, dropping the digest of the columns read after its '-'.
func stampOnly(version string) string {
	if i := strings.LastIndex(version, "-"); i > strings.LastIndex(version, ":") {
		return version[:i]
	}
	return version
}
