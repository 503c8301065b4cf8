package reconcile_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// backlog answers GET /events with pages of well-formed events, as
// GoCardless answers a connection with a long backlog since its cursor
// (the list shape of gocardless-pro-python tests/fixtures/events.json:
// the resources under their plural name, meta.cursors and meta.limit),
// and counts the pages it served.
type backlog struct {
	pages, perPage int
	at             time.Time // every event's created_at
	served         atomic.Int32
}

func (b *backlog) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.URL.Path != "/events" {
		return nil, fmt.Errorf("unexpected %s %s", req.Method, req.URL.Path)
	}
	page := b.served.Add(1) - 1
	var evs []string
	for i := range b.perPage {
		evs = append(evs, fmt.Sprintf(`{"id":"EV%04d%04d","created_at":%q,"resource_type":"creditors","action":"updated","links":{"creditor":"CR1"},"details":{}}`,
			page, i, b.at.Format("2006-01-02T15:04:05.000Z")))
	}
	after := "null"
	if int(page)+1 < b.pages {
		after = fmt.Sprintf(`"EV%04d%04d"`, page, b.perPage-1)
	}
	body := `{"events":[` + strings.Join(evs, ",") + `],"meta":{"cursors":{"before":null,"after":` + after + `},"limit":500},"linked":{}}`
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
}

// A pass publishes the events as it reads them, so whatever the backlog
// since its cursor (the overlap alone is minutes of events, a first pass
// CATCHUP_LOOKBACK of them) it holds a page of GoCardless's answer, not
// all of it: the first publish comes before the second page is read. The
// cursor is still the newest event's, stored once every page is
// published.
func TestCatchUpPublishesAsItReads(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	ctx := context.Background()
	b := &backlog{pages: 4, perPage: 500, at: time.Now().UTC().Truncate(time.Millisecond)}
	dir := gcThrough(r, b)
	var published, pagesAtFirstPublish int
	pub := publishFunc(func(_ context.Context, msgs []bus.Msg) ([]bus.Ack, error) {
		if published == 0 {
			pagesAtFirstPublish = int(b.served.Load())
		}
		published += len(msgs)
		return make([]bus.Ack, len(msgs)), nil
	})
	c := &reconcile.CatchUp{Ledger: r.Ledger, Dir: dir, Bus: pub, Log: r.Log, Interval: time.Hour, Overlap: time.Minute, Lookback: 24 * time.Hour}
	if err := c.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if want := b.pages * b.perPage; published != want || int(b.served.Load()) != b.pages {
		t.Fatalf("published %d events from %d pages, want %d from %d", published, b.served.Load(), want, b.pages)
	}
	if pagesAtFirstPublish != 1 {
		t.Errorf("the first events were published after %d pages were read, want 1: the pass holds the whole backlog", pagesAtFirstPublish)
	}
	conns, err := dir.GoCardlessConnections(ctx)
	if err != nil || len(conns) != 1 {
		t.Fatalf("connections %v: %v", conns, err)
	}
	if cursor, err := r.Ledger.EventCursor(ctx, conns[0].ID); err != nil || !cursor.Equal(b.at) {
		t.Errorf("cursor %v (%v), want %v", cursor, err, b.at)
	}
}
