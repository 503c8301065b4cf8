package reconcile_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
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
