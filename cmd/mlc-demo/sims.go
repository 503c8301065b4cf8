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
	"github.com/ml-connector/ml-connector/platform/audit"
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
	// natsURL is the embedded NATS server's (the benchmark reads MLC_GC).
	natsURL string
	// advancedAt is when GoCardless's clock last moved: the wall time of
	// the events that move made (the benchmark measures from it).
	advancedAt time.Time
	db         *pgxpool.Pool
	book       book
	today      time.Time
	auditKeys  *audit.Keys
	refunded   map[string]bool
	// console is where the demo's console is and its demo login, for a
	// journey through it while the stack is up.
	console consoleSignIn
}

// consoleSignIn is the console's address and the demo's account on it.
type consoleSignIn struct {
	url, name, password string
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
	// The demo writes audit rows too (the connections it registers); they
	// are signed as the services sign theirs, or mlcctl audit verify fails.
	s.auditKeys = audit.KeysFrom(keys)
	audit.SignWith(s.auditKeys)
	setup := "billing_request"
	if direct {
		setup = "direct"
	}
	if err := register(ctx, connections.NewStore(s.db, keys), s.gc.URL, ifsSrv.URL, s.jdeNodes, s.gc.Creditors()[0].ID, setup); err != nil {
		return nil, fmt.Errorf("register connections: %w", err)
	}
	s.today = today
	upfront := opts.invoices
	if opts.rate > 0 {
		upfront = 0
	}
	if s.book, err = seed(s.ifs, s.jde, upfront, today); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	if !direct {
		s.book.awaitNoBankCustomers()
	}
	fmt.Fprintf(opts.out, "Book                       %d invoices over IFS companies 10, 20, 30 and JDE business units M30, M40, M50\n", opts.invoices)
	if opts.rate > 0 {
		fmt.Fprintf(opts.out, "                           raised in the ERPs at %g a second while the pipeline runs\n", opts.rate)
	}
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
//
// The monitor outlives its database: a failed read (Postgres restarting,
// the demo's backends terminated) is reported once and retried on the
// next tick, as the services retry theirs.
func (s *simulators) run(ctx context.Context, opts options, chaos *chaosControls) error {
	if opts.day <= 0 {
		opts.day = time.Second
	}
	fmt.Fprintf(opts.out, "\nCollecting. GoCardless's clock runs a day every %v.\n", opts.day)
	start := time.Now()
	deadline := start.Add(opts.timeout)
	tick := time.NewTicker(opts.day / 4)
	defer tick.Stop()
	var last tally
	var measured bool
	var outage error
	var lastMeasure, lastPrint time.Time
	var measureGap time.Duration
	var stalled stallWatch
	lastDay := ""
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return s.finish(context.WithoutCancel(ctx), opts, last, measured, false)
		case <-tick.C:
		}
		if opts.chaos != nil {
			if err := opts.chaos(n, chaos); err != nil {
				return fmt.Errorf("chaos: %w", err)
			}
		}
		if err := chaos.crashLooping(); err != nil {
			return err
		}
		s.advancedAt = time.Now() // before the move: its events' latency counts all of it
		s.gc.Advance(6 * time.Hour)
		if err := s.raiseInvoices(opts, time.Since(start)); err != nil {
			return err
		}
		if opts.observe != nil {
			opts.observe(n, s)
		}
		// The monitor reads the whole book, so it measures at most a
		// tenth of the time: every tick would make its cost, and the
		// load it puts on Postgres, grow with the square of the book.
		if time.Since(lastMeasure) < measureGap {
			continue
		}
		began := time.Now()
		t, err := s.measureAll(ctx, chaos.nats)
		lastMeasure, measureGap = time.Now(), 9*time.Since(began)
		if err == nil {
			err = s.raiseRefunds(t)
		}
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			if outage == nil {
				fmt.Fprintf(opts.out, "monitor: cannot read the ledger (%v); retrying every tick\n", err)
			}
			outage = err
			if opts.untilSettled && time.Now().After(deadline) {
				return fmt.Errorf("gave up after %v with the ledger unreadable: %w", opts.timeout, err)
			}
			continue
		}
		if outage != nil {
			fmt.Fprintln(opts.out, "monitor: ledger readable again")
			outage = nil
		}
		last, measured = t, true
		if day := s.gc.Now().Format("2006-01-02"); opts.day >= 500*time.Millisecond && day != lastDay || time.Since(lastPrint) >= 10*time.Second {
			fmt.Fprintln(opts.out, t.progress(day, len(s.book.invoices)))
			lastDay, lastPrint = day, time.Now()
		}
		for _, line := range stalled.check(t, len(s.book.invoices), time.Now()) {
			fmt.Fprintln(opts.out, line)
		}
		if t.settled(opts.invoices) && len(s.book.invoices) == opts.invoices && opts.untilSettled {
			// Let late duplicates (webhook retries, catch-up) arrive, then count again.
			time.Sleep(2 * time.Second)
			final, err := s.measureAll(ctx, chaos.nats)
			if err != nil || !final.settled(opts.invoices) {
				continue
			}
			fmt.Fprintf(opts.out, "settled in %s: %.0f invoices/s from ERP poll to ERP posting\n",
				time.Since(start).Round(100*time.Millisecond), float64(len(s.book.invoices))/time.Since(start).Seconds())
			if err := s.finish(ctx, opts, final, true, true); err != nil {
				return err
			}
			if opts.settled != nil {
				return opts.settled(ctx, s)
			}
			return nil
		}
		if opts.untilSettled && time.Now().After(deadline) {
			return s.finish(ctx, opts, t, true, true)
		}
	}
}

// finish prints the last progress line and the reconciliation from the
// same tally, so the two never disagree.
func (s *simulators) finish(ctx context.Context, opts options, t tally, measured, strict bool) error {
	if !measured {
		fmt.Fprintln(opts.out, "no reconciliation: the ledger was never readable")
		if strict {
			return errors.New("the book was never measured")
		}
		return nil
	}
	fmt.Fprintln(opts.out, t.progress(s.gc.Now().Format("2006-01-02"), len(s.book.invoices)))
	return s.report(ctx, opts, t, strict)
}

// raiseInvoices adds, with --rate, the invoices due by now to the ERPs.
func (s *simulators) raiseInvoices(opts options, elapsed time.Duration) error {
	if opts.rate <= 0 {
		return nil
	}
	due := min(opts.invoices, int(opts.rate*elapsed.Seconds()))
	have := len(s.book.invoices)
	if due <= have {
		return nil
	}
	more, err := seedRange(s.ifs, s.jde, have, due-have, s.today)
	if err != nil {
		return fmt.Errorf("raise invoices: %w", err)
	}
	if opts.mandateSetup != "direct" {
		more.awaitNoBankCustomers()
	}
	s.book.invoices = append(s.book.invoices, more.invoices...)
	return nil
}

// raiseRefunds adds, in JD Edwards, the refund document of each invoice
// meant to be refunded once the ledger has it paid out, as AR would.
func (s *simulators) raiseRefunds(t tally) error {
	for _, inv := range s.book.invoices {
		if inv.refundDoc == 0 || s.refunded[inv.id] || t.state(inv) != "paid_out" {
			continue
		}
		doc, _, _ := strings.Cut(inv.id, "/")
		var orig int64
		fmt.Sscan(doc, &orig)
		today := time.Now().UTC()
		err := s.jde.AddInvoices(jdesim.Invoice{DOC: inv.refundDoc, DCT: "RF", KCO: jdeCompany, SFX: "001", CO: jdeCompany,
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

// report prints the reconciliation: every exception, expected or not,
// and every invoice not in its expected end state. strict makes an
// unsettled book, a duplicate or an outcome not posted an error.
func (s *simulators) report(ctx context.Context, opts options, t tally, strict bool) error {
	fmt.Fprintln(opts.out)
	t.print(opts.out)
	lost := len(t.missing)
	for i, m := range t.missing {
		if i == 20 {
			fmt.Fprintf(opts.out, "  ... and %d more\n", lost-20)
			break
		}
		fmt.Fprintln(opts.out, "  not settled:", m)
	}
	fmt.Fprintf(opts.out, "exceptions: %d (%d expected: invoices that cannot be collected; %d unexpected)\n",
		len(t.exceptions), t.expected, len(t.unexpected))
	for _, e := range t.exceptions {
		fmt.Fprintln(opts.out, "  exception", e)
	}
	fmt.Fprintln(opts.out, t.deadLetterLine())
	fmt.Fprintln(opts.out, t.payouts)
	for i, p := range t.payouts.problems {
		if i == 20 {
			fmt.Fprintf(opts.out, "  ... and %d more\n", len(t.payouts.problems)-20)
			break
		}
		fmt.Fprintln(opts.out, "  payout:", p)
	}
	s.printMonthEnd(ctx, opts.out)
	fmt.Fprintf(opts.out, "reconciled: %d invoices, %d collected, %d failed, %d refunded, %d exceptions (%d unexpected), %d posted to ERP (%d not), lost %d, duplicated %d, dead letters %d\n",
		len(s.book.invoices), t.collected, t.failed, t.refunded, len(t.exceptions), len(t.unexpected), t.posted, t.unposted, lost, t.duplicated, t.deadLetters)
	if len(t.unexpected) > 0 {
		// Listed and counted, but not a failure of the book: nothing is
		// lost or doubled by them, and each is an operator's to look at.
		fmt.Fprintf(opts.out, "%d unexpected exceptions: an operator would have to look at each (mlcctl exceptions list)\n", len(t.unexpected))
	}
	if strict && (lost > 0 || t.duplicated > 0 || t.unposted > 0 || !t.payouts.settled() || t.deadLetters != t.deadLetterExceptions) {
		return errors.New("the book did not reconcile")
	}
	return nil
}
