package jde_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
)

// recorder notes the input names of every orchestration call.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen map[string][]string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if name, ok := strings.CutPrefix(req.URL.Path, "/jderest/v3/orchestrator/"); ok && req.Body != nil {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		var in map[string]any
		_ = json.Unmarshal(body, &in)
		var names []string
		for k := range in {
			names = append(names, k)
		}
		slices.Sort(names)
		r.mu.Lock()
		r.seen[name] = names
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

// The orchestration definitions shipped in docs/jde/orchestrations name
// exactly the inputs the writer sends, so a site that imports them gets
// every value and no input the writer never fills.
func TestShippedOrchestrationsMatchTheWriter(t *testing.T) {
	rec := &recorder{next: http.DefaultTransport, seen: map[string][]string{}}
	e := newEnv(t, jdesim.Options{}, func(c *jde.Config) { c.Transport = rec })
	e.sim.PutCustomerMaster(jdesim.CustomerMaster{AN8: 4242, CO: "00001"})
	e.sim.AddInvoices(
		jdesim.Invoice{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, AG: 5000, AAP: 5000, CRCD: "EUR", MCU: "M30"},
		jdesim.Invoice{DOC: 5001, DCT: "RF", KCO: "00001", SFX: "001", AN8: 4242, AG: -100, AAP: -100, CRCD: "EUR", MCU: "M30",
			ODOC: 1001, ODCT: "RI", OKCO: "00001", OSFX: "001"})
	ctx := context.Background()
	gl := map[string]string{"M30": "M30.1110"}
	std := jde.NewWriter(e.client, jde.WriterConfig{GLAccounts: gl})
	own := jde.NewWriter(e.client, jde.WriterConfig{GLAccounts: gl, Preset: jde.PresetOrchestrations})
	steps := []func() error{
		func() error { _, err := std.PostPayment(ctx, confirmed("EV1", 1000, "EUR")); return err },
		func() error { _, err := own.PostPayment(ctx, confirmed("EV2", 1000, "EUR")); return err },
		func() error {
			p := confirmed("EV3", 1000, "EUR")
			p.Kind = jde.PaymentFailed
			_, err := std.PostPayment(ctx, p)
			return err
		},
		func() error {
			_, err := std.PostRefund(ctx, jde.Refund{OutcomeID: "EV4", Kind: jde.RefundPaid,
				Refund:  jde.DocumentKey{Company: "00001", Document: "5001", DocType: "RF", Suffix: "001"},
				Invoice: invoiceKey("1001"), RefundID: "RF1", PaymentID: "PM001", AmountMinor: 100, Currency: "EUR", OccurredAt: paidAt})
			return err
		},
		func() error {
			_, err := std.PostMandateStatus(ctx, jde.Mandate{OutcomeID: "EV5", Company: "00001", Customer: "4242", MandateID: "MD1",
				Status: "active", OccurredAt: paidAt})
			return err
		},
		func() error {
			fees := jde.NewWriter(e.client, jde.WriterConfig{PayoutAccounts: map[string]jde.PayoutAccounts{
				"00001": {Fee: "HQ.6570", Bank: "HQ.1110"}}})
			_, err := fees.PostPayout(ctx, jde.Payout{PayoutID: "PO1", Reference: "REF", Company: "00001", ArrivalDate: paidAt,
				Currency: "USD", AmountMinor: -120, FeesMinor: -120})
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	files, err := filepath.Glob("../../docs/jde/orchestrations/*.json")
	if err != nil || len(files) != 6 {
		t.Fatalf("shipped definitions = %v, %v", files, err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var def struct {
			Name   string `json:"name"`
			Inputs []struct {
				Name string `json:"name"`
			} `json:"inputs"`
		}
		if err := json.Unmarshal(raw, &def); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var names []string
		for _, in := range def.Inputs {
			names = append(names, in.Name)
		}
		slices.Sort(names)
		sent, ok := rec.seen[def.Name]
		if !ok || strings.Join(sent, ",") != strings.Join(names, ",") {
			t.Errorf("%s: definition inputs %v, the writer sends %v", filepath.Base(f), names, sent)
		}
	}
}
