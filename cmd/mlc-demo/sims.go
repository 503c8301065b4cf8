package main

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

// simulators are the three external systems, run in this process so the
// demo can seed them, move GoCardless's clock and read what they recorded.
type simulators struct {
	gc          *gcsim.Server
	ifs         *ifssim.Sim
	jde         *jdesim.Server
	jdeNodes    *jdesim.Deployment // two AIS nodes behind a cookie-affinity balancer
	servers     []*httptest.Server
	webhookAddr string
	db          *pgxpool.Pool
	book        book
	refunded    map[string]bool
}

func startSimulators(ctx context.Context, dbURL string, key []byte, opts options) (*simulators, error) {
	s := &simulators{refunded: map[string]bool{}}
	var err error
	if s.webhookAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	direct := opts.mandateSetup == "direct"
	// An ordinary GoCardless account (on a package allowing its own Bacs
	// references) sets mandates up through billing requests; the direct
	// path needs GoCardless's approval for custom payment pages.
	creditor := gcsim.Creditor{ID: gcsim.DefaultCreditorID, Name: "Simulated Creditor Ltd", CountryCode: "GB", CustomPaymentReferences: true}
	rules := append(slices.Clone(scenarios), payers...)
	if direct {
		creditor, rules = gcsim.ApprovedCreditor(), scenarios
	}
	s.gc = gcsim.NewServer(noTB{}, gcsim.Options{
		Tokens:    []string{gcToken},
		Creditors: []gcsim.Creditor{creditor},
		Clock:     gcsim.NewManualClock(today.Add(8 * time.Hour)),
		RateLimit: 1 << 30,
		Scenarios: rules,
		Webhook: gcsim.WebhookOptions{URL: "http://" + s.webhookAddr + "/webhooks/gocardless/" + gcConnection, Secret: webhookSecret,
			Linger: 200 * time.Millisecond, RetryBase: time.Second, RetryMax: 5 * time.Second, MaxAttempts: 20},
	})
	s.ifs = ifssim.New(ifssim.Config{Budget: -1})
	s.jde = jdesim.New(jdesim.Options{})
	ifsSrv := httptest.NewServer(s.ifs)
	s.servers = []*httptest.Server{ifsSrv}
	if s.jdeNodes, err = s.jde.ServeDeployment(2); err != nil {
		return nil, err
	}
	fmt.Fprintf(opts.out, "GoCardless simulator       %s\nIFS Cloud simulator        %s\nJD Edwards simulator       %s (balancer of AIS nodes %s)\n",
		s.gc.URL, ifsSrv.URL, s.jdeNodes.URL, strings.Join(s.jdeNodes.Nodes, ", "))

	if s.db, err = database.Open(ctx, dbURL); err != nil {
		return nil, err
	}
	if err := database.Migrate(ctx, s.db); err != nil {
		return nil, err
	}
	keys, err := secrets.NewKeyring(key)
	if err != nil {
		return nil, err
	}
	setup := "billing_request"
	if direct {
		setup = "direct"
	}
	if err := register(ctx, connections.NewStore(s.db, keys), s.gc.URL, ifsSrv.URL, s.jdeNodes, s.gc.Creditors()[0].ID, setup); err != nil {
		return nil, fmt.Errorf("register connections: %w", err)
	}
	if s.book, err = seed(s.ifs, s.jde, opts.invoices, today); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	if !direct {
		s.book.awaitNoBankCustomers()
	}
	fmt.Fprintf(opts.out, "Book                       %d invoices over IFS companies 10, 20, 30 and JDE business units M30, M40, M50\n", len(s.book.invoices))
	return s, nil
}

// noTB lets the simulator's test-server constructor run outside a test.
type noTB struct{}

func (noTB) Helper()        {}
func (noTB) Cleanup(func()) {}

func (s *simulators) close() {
	for _, srv := range s.servers {
		srv.Close()
	}
	if s.jdeNodes != nil {
		s.jdeNodes.Close()
	}
	s.gc.Close()
	if s.db != nil {
		s.db.Close()
	}
}

// run moves GoCardless's clock a quarter day per tick, raises the JD
// Edwards refunds once their invoices are collected, shows progress, and
// ends with the reconciliation; with --until-settled it returns when the
// book is settled (or fails at the timeout), otherwise at Ctrl-C.
func (s *simulators) run(ctx context.Context, opts options, chaos *chaosControls) error {
	procs := chaos.procs
	if opts.day <= 0 {
		opts.day = time.Second
	}
	fmt.Fprintf(opts.out, "\nCollecting. GoCardless's clock runs a day every %v.\n", opts.day)
	start := time.Now()
	deadline := start.Add(opts.timeout)
	tick := time.NewTicker(opts.day / 4)
	defer tick.Stop()
	var last tally
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return s.report(context.WithoutCancel(ctx), opts, last, false)
		case <-tick.C:
		}
		if opts.chaos != nil {
			if err := opts.chaos(n, chaos); err != nil {
				return fmt.Errorf("chaos: %w", err)
			}
		}
		if err := anyExited(procs); err != nil {
			return err
		}
		s.gc.Advance(6 * time.Hour)
		t, err := measure(ctx, s.db, s.gc, s.book)
		if err != nil {
			return err
		}
		last = t
		if err := s.raiseRefunds(ctx); err != nil {
			return err
		}
		if n%4 == 0 && opts.day >= 500*time.Millisecond || n%40 == 0 {
			fmt.Fprintf(opts.out, "%s  settled %d/%d  paid out %d  failed %d  exceptions %d  posted to ERP %d\n",
				s.gc.Now().Format("2006-01-02"), t.reached, len(s.book.invoices), t.collected, t.failed, t.exceptions, t.posted)
		}
		if t.reached == len(s.book.invoices) && opts.untilSettled {
			// Let late duplicates (webhook retries, catch-up) arrive, then count again.
			time.Sleep(2 * time.Second)
			final, err := measure(ctx, s.db, s.gc, s.book)
			if err != nil {
				return err
			}
			fmt.Fprintf(opts.out, "settled in %s: %.0f invoices/s from ERP poll to ERP posting\n",
				time.Since(start).Round(100*time.Millisecond), float64(len(s.book.invoices))/time.Since(start).Seconds())
			if err := s.report(ctx, opts, final, true); err != nil {
				return err
			}
			if opts.settled != nil {
				return opts.settled(ctx, s)
			}
			return nil
		}
		if opts.untilSettled && time.Now().After(deadline) {
			return s.report(ctx, opts, t, true)
		}
	}
}

// raiseRefunds adds, in JD Edwards, the refund document of each invoice
// meant to be refunded once it has been paid out, as AR would.
func (s *simulators) raiseRefunds(ctx context.Context) error {
	for _, inv := range s.book.invoices {
		if inv.refundDoc == 0 || s.refunded[inv.id] {
			continue
		}
		var state string
		err := s.db.QueryRow(ctx, `SELECT state FROM collections WHERE company = $1 AND invoice_id = $2`, inv.company, inv.id).Scan(&state)
		if err != nil || state != "paid_out" {
			continue
		}
		doc, _, _ := strings.Cut(inv.id, "/")
		var orig int64
		fmt.Sscan(doc, &orig)
		today := time.Now().UTC()
		err = s.jde.AddInvoices(jdesim.Invoice{DOC: inv.refundDoc, DCT: "RF", KCO: jdeCompany, SFX: "001", CO: jdeCompany,
			AN8: anOf(s.jde, orig), AG: -1000, AAP: -1000, CRCD: inv.currency, DGJ: jdesim.Date(today.Year(), today.Month(), today.Day()),
			PST: "A", RMK: "Goodwill refund", ODOC: orig, ODCT: "RI", OKCO: jdeCompany, OSFX: "001"})
		if err != nil {
			return err
		}
		s.refunded[inv.id] = true
	}
	return nil
}

func anOf(jde *jdesim.Server, doc int64) int64 {
	inv, _ := jde.Invoice(jdesim.DocKey{DOC: doc, DCT: "RI", KCO: jdeCompany, SFX: "001"})
	return inv.AN8
}

// report prints the reconciliation; strict makes an unsettled book an error.
func (s *simulators) report(ctx context.Context, opts options, t tally, strict bool) error {
	fmt.Fprintln(opts.out)
	t.print(opts.out)
	lost := len(t.missing)
	for i, m := range t.missing {
		if i == 10 {
			fmt.Fprintf(opts.out, "  ... and %d more\n", lost-10)
			break
		}
		fmt.Fprintln(opts.out, "  not settled:", m)
	}
	fmt.Fprintf(opts.out, "reconciled: %d invoices, %d collected, %d failed, %d exceptions, %d posted to ERP, lost %d, duplicated %d\n",
		len(s.book.invoices), t.collected, t.failed, t.exceptions, t.posted, lost, t.duplicated)
	if strict && (lost > 0 || t.duplicated > 0) {
		return errors.New("the book did not reconcile")
	}
	return nil
}
