package reconcile_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/reconcile"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
)

// The payout tests' stand-ins for what GoCardless answers: a transport
// between the orchestrator's GoCardless clients and the simulator that
// changes an answer the simulator would not give.

// gcThrough is a directory of the rig's connections whose GoCardless
// clients send every request through rt.
func gcThrough(r *rig.Rig, rt http.RoundTripper) *accounts.Directory {
	return accounts.New(r.Registry, time.Minute, func(string) []gocardless.Option {
		return []gocardless.Option{gocardless.WithTransport(rt)}
	})
}

// reconcileThrough makes the rig's reconciler read GoCardless through rt.
func reconcileThrough(r *rig.Rig, rt http.RoundTripper) {
	r.Reconciler = reconcile.New(r.Ledger, gcThrough(r, rt), r.Poster.Client, r.Log)
}

// roundTripJSON sends req, decodes a 200 answer into doc, lets edit change
// it and answers with the result; any other answer is passed on as it is.
func roundTripJSON(req *http.Request, doc *map[string]any, edit func()) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, doc); err != nil {
		return nil, err
	}
	edit()
	if body, err = json.Marshal(*doc); err != nil {
		return nil, err
	}
	resp.Body, resp.ContentLength = io.NopCloser(strings.NewReader(string(body))), int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// editPayout changes every payout GoCardless returns.
type editPayout func(po map[string]any)

func (e editPayout) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || !strings.HasPrefix(req.URL.Path, "/payouts/") {
		return http.DefaultTransport.RoundTrip(req)
	}
	var doc map[string]any
	return roundTripJSON(req, &doc, func() { e(doc["payouts"].(map[string]any)) })
}

// paidEvents advances GoCardless two weeks without delivering anything,
// so every collected payment is paid out, and returns every event it
// recorded, oldest first, and the payouts' paid events among them.
func paidEvents(t *testing.T, r *rig.Rig) (evs, paid []gocardless.Event) {
	t.Helper()
	r.Sim.Advance(14 * 24 * time.Hour)
	evs = allEvents(t, r)
	for _, ev := range evs {
		if ev.ResourceType == "payouts" && ev.Action == "paid" {
			paid = append(paid, ev)
		}
	}
	if len(paid) == 0 {
		t.Fatal("no payout paid")
	}
	return evs, paid
}
