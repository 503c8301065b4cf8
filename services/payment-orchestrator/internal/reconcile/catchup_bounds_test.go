package reconcile_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/reconcile"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
)

// injectEvents is a transport that adds events to the first page of every
// GET /events answer, as a GoCardless answering with odd events would.
type injectEvents struct {
	events []json.RawMessage
}

func (i injectEvents) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || req.URL.Path != "/events" || req.URL.Query().Has("after") || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	defer resp.Body.Close()
	var page map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil, err
	}
	var evs []json.RawMessage
	if err := json.Unmarshal(page["events"], &evs); err != nil {
		return nil, err
	}
	// Joined by hand: json.Marshal would escape the bytes the test
	// compares the dead letters with.
	var list [][]byte
	for _, e := range append(evs, i.events...) {
		list = append(list, e)
	}
	page["events"] = append(append([]byte("["), bytes.Join(list, []byte(","))...), ']')
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(page); err != nil {
		return nil, err
	}
	resp.Body, resp.ContentLength = io.NopCloser(&body), int64(body.Len())
	resp.Header.Del("Content-Length")
	return resp, nil
}

// An event GET /events answers out of GoCardless's shapes (a resource
// type that would break the subject, an id that is not GoCardless's) is
// kept as a dead letter, becomes an exception, and does not stop the pass:
// the events beside it are published and the cursor moves past it, so the
// next pass does not fail on it again.
func TestCatchUpDeadLettersMalformedEvents(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 1)
	ctx := context.Background()
	newest := r.Sim.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	at := newest.Format("2006-01-02T15:04:05.000Z")
	bad := []string{
		`{"id":"EVBADTYPE1","created_at":"` + at + `","resource_type":"payments.>","action":"confirmed","links":{"payment":"PM1"},"details":{}}`,
		`{"id":"evil id with spaces","created_at":"` + at + `","resource_type":"payments","action":"confirmed","links":{"payment":"PM1"},"details":{}}`,
	}
	good := `{"id":"EVGOOD1","created_at":"` + r.Sim.Now().UTC().Format("2006-01-02T15:04:05.000Z") + `","resource_type":"creditors","action":"updated","links":{"creditor":"CR1"},"details":{}}`
	inject := injectEvents{events: []json.RawMessage{json.RawMessage(bad[0]), json.RawMessage(good), json.RawMessage(bad[1])}}
	dir := gcThrough(r, inject)
	c := &reconcile.CatchUp{Ledger: r.Ledger, Dir: dir, Bus: r.Bus, Log: r.Log, Interval: time.Hour, Overlap: time.Minute, Lookback: 100 * 365 * 24 * time.Hour}

	for pass := range 2 { // the second pass re-reads them (the overlap) and still succeeds
		if err := c.Pass(ctx); err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
	}
	r.Eventually(20*time.Second, "an exception per malformed event", func() bool {
		return r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'dead_letter' AND aggregate_id LIKE 'rejected:events-catch-up:%'`) == len(bad)
	})
	rows, err := r.DB.Query(ctx, `SELECT reason, detail->>'data' FROM exceptions WHERE kind = 'dead_letter' AND aggregate_id LIKE 'rejected:events-catch-up:%'`)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]string{}
	for rows.Next() {
		var reason, data string
		if err := rows.Scan(&reason, &data); err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(data)
		kept[string(raw)] = reason
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(kept[bad[0]], "resource_type") || !strings.Contains(kept[bad[1]], "event id") {
		t.Errorf("dead letters do not keep the raw events with their reasons: %v", kept)
	}
	for raw, reason := range kept {
		if strings.Contains(reason, "evil") || strings.Contains(reason, ">") {
			t.Errorf("reason %q for %s quotes the refused value", reason, raw)
		}
	}

	// The good event beside them was published.
	stream, err := r.Bus.JetStream().Stream(ctx, bus.StreamGC)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := stream.GetLastMsgForSubject(ctx, "mlc.gc.creditors.updated"); err != nil || m.Header.Get("Nats-Msg-Id") != "EVGOOD1" {
		t.Errorf("the well-formed event was not published: %v", err)
	}

	// The cursor moved past the malformed events.
	conns, err := dir.GoCardlessConnections(ctx)
	if err != nil || len(conns) != 1 {
		t.Fatalf("connections %v: %v", conns, err)
	}
	cursor, err := r.Ledger.EventCursor(ctx, conns[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !cursor.Equal(newest) {
		t.Errorf("cursor %v, want %v (the newest, malformed, event)", cursor, newest)
	}
}

// backlog answers GET /events with n well-formed events a millisecond
// apart, as GoCardless answers a connection with a long backlog since its
// cursor: newest first, after=X the items older than X, meta.cursors.after
// null on the last page, or with trailingEmpty a cursor there too and an
// empty page after it (the list shape of gocardless-pro-python
// tests/fixtures/events.json). It refuses before cursors, which the pass
// must not depend on (GoCardless documents after=X; gcsim's doc.go says
// what before does, GoCardless's reference less). It logs the pages it
// served and, through publish, what was published, in the order they
// happened.
type backlog struct {
	n             int
	trailingEmpty bool
	start         time.Time
	mu            sync.Mutex
	log           []string // "page" or "publish <count>"
}

func (b *backlog) id(i int) string { return fmt.Sprintf("EV%08d", i) }

func (b *backlog) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.URL.Path != "/events" {
		return nil, fmt.Errorf("unexpected %s %s", req.Method, req.URL.Path)
	}
	q := req.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	index := func(id string) int { i, _ := strconv.Atoi(strings.TrimPrefix(id, "EV")); return i }
	if q.Has("before") {
		return nil, fmt.Errorf("before=%s: the pass must not depend on before cursors", q.Get("before"))
	}
	hi := b.n // the page's items are lo..hi-1, served newest first
	if q.Has("after") {
		hi = index(q.Get("after"))
	}
	lo := max(hi-limit, 0)
	var evs []string
	for i := hi - 1; i >= lo; i-- {
		evs = append(evs, fmt.Sprintf(`{"id":%q,"created_at":%q,"resource_type":"creditors","action":"updated","links":{"creditor":"CR1"},"details":{}}`,
			b.id(i), b.start.Add(time.Duration(i)*time.Millisecond).Format("2006-01-02T15:04:05.000Z")))
	}
	after, before := "null", "null"
	if hi > lo && (lo > 0 || b.trailingEmpty) {
		after = strconv.Quote(b.id(lo))
	}
	if hi < b.n && hi > lo {
		before = strconv.Quote(b.id(hi - 1))
	}
	b.mu.Lock()
	b.log = append(b.log, "page")
	b.mu.Unlock()
	body := `{"events":[` + strings.Join(evs, ",") + `],"meta":{"cursors":{"before":` + before + `,"after":` + after + `},"limit":` + strconv.Itoa(limit) + `},"linked":{}}`
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
}

// A pass publishes a connection's events oldest first, the order in which
// the consumers then take them, whatever the backlog since its cursor,
// and it holds a few pages of GoCardless's answer, not all of it (the
// overlap alone is minutes of events, a first pass CATCHUP_LOOKBACK of
// them): a short list is read whole and sorted; a long one is published
// a page at a time from its oldest page up, each page (but the oldest,
// just read, and the newest, kept) read again after the one before it was
// published. The cursor is the newest event's either way, also when the
// list ends on an empty page.
func TestCatchUpPublishesOldestFirstHoldingAFewPages(t *testing.T) {
	for _, tt := range []struct {
		name          string
		pages         int
		trailingEmpty bool
	}{{"short list", 2, false}, {"long list", 7, false}, {"long list ending on an empty page", 7, true}} {
		t.Run(tt.name, func(t *testing.T) {
			r := rig.New(t, rig.Options{GC: rig.Direct})
			ctx := context.Background()
			b := &backlog{n: tt.pages * gocardless.MaxLimit, trailingEmpty: tt.trailingEmpty, start: time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)}
			var published []string
			pub := publishFunc(func(_ context.Context, msgs []bus.Msg) ([]bus.Ack, error) {
				b.mu.Lock()
				defer b.mu.Unlock()
				b.log = append(b.log, fmt.Sprintf("publish %d", len(msgs)))
				for _, m := range msgs {
					published = append(published, m.ID)
				}
				return make([]bus.Ack, len(msgs)), nil
			})
			c := &reconcile.CatchUp{Ledger: r.Ledger, Dir: gcThrough(r, b), Bus: pub, Log: r.Log, Interval: time.Hour, Overlap: time.Minute, Lookback: 24 * time.Hour}
			if err := c.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			if len(published) != b.n {
				t.Fatalf("published %d events, want %d", len(published), b.n)
			}
			for i, id := range published {
				if id != b.id(i) {
					t.Fatalf("event %d published is %s, want %s: not oldest first", i, id, b.id(i))
				}
			}
			// Pages read after the first publish: none when the list was
			// held whole; for a long one, every page but the oldest and
			// the newest again.
			readLater := 0
			for i, e := range b.log {
				if strings.HasPrefix(e, "publish") {
					readLater = len(slices.DeleteFunc(slices.Clone(b.log[i:]), func(e string) bool { return e != "page" }))
					break
				}
			}
			want := 0
			if tt.pages > 2 { // holdPages
				want = tt.pages - 2
			}
			if readLater != want {
				t.Errorf("%d pages read after the first publish, want %d (log %v)", readLater, want, b.log)
			}
			conns, err := c.Dir.GoCardlessConnections(ctx)
			if err != nil || len(conns) != 1 {
				t.Fatalf("connections %v: %v", conns, err)
			}
			newest := b.start.Add(time.Duration(b.n-1) * time.Millisecond)
			if cursor, err := r.Ledger.EventCursor(ctx, conns[0].ID); err != nil || !cursor.Equal(newest) {
				t.Errorf("cursor %v (%v), want %v", cursor, err, newest)
			}
		})
	}
}
