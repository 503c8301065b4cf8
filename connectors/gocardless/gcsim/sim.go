package gcsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultCreditorID is the ID of the creditor a simulator has when its
// options configure none.
const DefaultCreditorID = "CR00SIMULATOR1"

// Defaults for [Options].
const (
	DefaultRateLimit         = 1000
	DefaultRateWindow        = time.Minute
	DefaultWebhookBatchSize  = 250
	DefaultWebhookAttempts   = 8
	DefaultWebhookRetryBase  = time.Second
	DefaultWebhookRetryMax   = time.Hour
	DefaultWebhookTimeout    = 10 * time.Second
	DefaultWebhookReorderFor = time.Second
	DefaultTickInterval      = time.Second
)

// Options configure a simulator. The zero value is usable: one token-less
// simulator that refuses every request, so tests set at least Tokens.
type Options struct {
	// Tokens are the accepted access tokens (Authorization: Bearer ...).
	Tokens []string
	// Creditors of the account. Only ID, Name, CountryCode,
	// CustomPaymentPagesEnabled and CustomPaymentReferences are read; IDs
	// must start with CR. Default: one GB creditor, DefaultCreditorID, not
	// approved for custom payment pages, as a new GoCardless account is
	// (see ApprovedCreditor for one that is).
	Creditors []Creditor
	// Clock drives lifecycles. Default: a ManualClock at DefaultStart.
	Clock Clock
	// TickInterval is how often lifecycles are processed for a clock that
	// moves by itself (anything but a *ManualClock). Default 1 s.
	TickInterval time.Duration
	// Seed makes IDs and random faults repeatable; 0 seeds randomly.
	Seed uint64
	// RateLimit requests per RateWindow per token (defaults 1000 per
	// minute, GoCardless's limit).
	RateLimit  int
	RateWindow time.Duration
	// Webhook configures webhook delivery; no URL, no webhooks.
	Webhook WebhookOptions
	// Scenarios choose non-default outcomes (failures); see Rule.
	Scenarios []Rule
	// Faults to inject from the start.
	Faults Faults
	// Logger receives the simulator's own diagnostics. Default: discarded.
	Logger *slog.Logger
	// Fees are the price list the payouts deduct; nil means DefaultFees
	// (&Fees{} for none).
	Fees *Fees
	// NotifyMandateRequests makes the billing request notify action
	// accept mandate-only requests. GoCardless's generated docs say notify
	// is "currently supported only for Pay by Bank Billing Requests", so
	// by default the simulator refuses it for mandate requests; set this
	// to test the answer its guides describe (GoCardless emails the payer).
	NotifyMandateRequests bool
	// MandateReinstates is how often a mandate may be reinstated. The
	// client libraries' generated docs disagree: "Mandates can be
	// resubmitted up to 3 times" (gocardless-pro-python, -ruby, -dotnet
	// and older -go) and "up to 10 times" (gocardless-pro-java, newer
	// gocardless-pro-go). 0 means the stricter 3; set 10 for the other.
	MandateReinstates int
}

// WebhookOptions configure webhook delivery.
type WebhookOptions struct {
	// URL receives POSTs of signed event batches.
	URL string
	// Secret keys the Webhook-Signature HMAC, used as given.
	Secret string
	// BatchSize is the most events per request (default 250).
	BatchSize int
	// Linger delays a delivery after the first queued event so that events
	// arriving together share a request (default 0: send at once).
	Linger time.Duration
	// MaxAttempts bounds deliveries of one batch (default 8). Attempt n+1
	// waits RetryBase*2^(n-1), at most RetryMax (defaults 1 s, 1 h).
	MaxAttempts int
	RetryBase   time.Duration
	RetryMax    time.Duration
	// Manual stops automatic delivery: batches go out only on Flush.
	Manual bool
	// ReorderHold is how long a delivery held back by the reorder fault
	// waits for a later one to overtake it (default 1 s).
	ReorderHold time.Duration
	// Client sends the requests. Default: 10 s timeout, redirects not
	// followed (as GoCardless does).
	Client *http.Client
}

// Sim is an in-process GoCardless API. It is an [http.Handler]; serve it
// with net/http or use [NewServer] in tests. Its methods are safe for
// concurrent use.
type Sim struct {
	clock  Clock
	manual bool
	log    *slog.Logger
	tick   time.Duration
	wall   func() time.Time

	// mu guards everything below, and is held for the whole of an API
	// request so that each request is atomic, as in a database
	// transaction.
	mu        sync.Mutex
	rng       *rand.Rand
	faultRNG  *rand.Rand
	usedIDs   map[string]bool
	seq       uint64
	baseToken []string
	tokens    map[string]bool // token -> active
	creditors table[Creditor]
	baseCred  []Creditor
	customers table[Customer]
	accounts  table[CustomerBankAccount]
	mandates  table[Mandate]
	payments  table[Payment]
	refunds   table[Refund]
	subs      table[Subscription]
	payouts   table[Payout]
	events    table[Event]

	billingRequests table[BillingRequest]
	flows           table[BillingRequestFlow]
	notifyMandates  bool
	reinstates      int // most reinstates of one mandate
	idem            map[idemScope]string
	jobs            jobQueue
	openPay         map[string]*Payout    // creditor/currency/date -> payout still collecting
	balances        map[string][]movement // creditor/currency -> movements waiting for a payout
	fees            Fees
	scenarios       []Rule
	faults          Faults
	limiter         *limiter
	hook            WebhookOptions
	outbox          []*Event
	firstOut        time.Time // wall time the oldest outbox event was queued
	delivs          []*Delivery

	client *http.Client
	sendMu sync.Mutex // one sender at a time keeps deliveries in order
	wake   chan struct{}
	stop   context.CancelFunc
	done   sync.WaitGroup
}

// idemScope scopes idempotency keys per token and resource type, as
// GoCardless does.
type idemScope struct {
	token, resource, key string
}

// table holds one resource type in creation order.
type table[T any] struct {
	byID map[string]*T
	list []*T
}

func (t *table[T]) add(id string, v *T) {
	if t.byID == nil {
		t.byID = make(map[string]*T)
	}
	t.byID[id] = v
	t.list = append(t.list, v)
}

// seqOf returns the creation sequence of the record with id, for cursors.
func seqOf[T any, P interface {
	*T
	record
}](t *table[T], id string) (uint64, bool) {
	v, ok := t.byID[id]
	if !ok {
		return 0, false
	}
	return P(v).seqNo(), true
}

func (t *table[T]) get(id string) (*T, bool) {
	v, ok := t.byID[id]
	return v, ok
}

// New returns a simulator configured by opts, which it takes on trust (see
// Options.Validate). Call Close to stop its background work (webhook
// delivery and, for a moving clock, lifecycle processing).
func New(opts Options) *Sim {
	s := &Sim{
		clock: opts.Clock,
		log:   opts.Logger,
		tick:  opts.TickInterval,
		wall:  time.Now,
		wake:  make(chan struct{}, 1),
	}
	if s.clock == nil {
		s.clock = NewManualClock(DefaultStart)
	}
	_, s.manual = s.clock.(*ManualClock)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.tick <= 0 {
		s.tick = DefaultTickInterval
	}
	if opts.RateLimit <= 0 {
		opts.RateLimit = DefaultRateLimit
	}
	if opts.RateWindow <= 0 {
		opts.RateWindow = DefaultRateWindow
	}
	s.hook = normalizeWebhook(opts.Webhook)
	s.client = s.hook.Client
	if s.client == nil {
		s.client = &http.Client{
			Timeout:       DefaultWebhookTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	s.rng = newRand(opts.Seed)
	s.faultRNG = newRand(opts.Seed ^ 0x5eed)
	s.baseToken = slices.Clone(opts.Tokens)
	s.baseCred = opts.Creditors
	if len(s.baseCred) == 0 {
		s.baseCred = []Creditor{{ID: DefaultCreditorID, Name: "Simulated Creditor Ltd", CountryCode: "GB"}}
	}
	s.limiter = newLimiter(opts.RateLimit, opts.RateWindow)
	s.scenarios = slices.Clone(opts.Scenarios)
	s.notifyMandates = opts.NotifyMandateRequests
	s.reinstates = opts.MandateReinstates
	if s.reinstates <= 0 {
		s.reinstates = 3
	}
	s.fees = DefaultFees
	if opts.Fees != nil {
		s.fees = *opts.Fees
	}
	s.faults = opts.Faults
	s.resetLocked()

	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.done.Add(1)
	go s.dispatchLoop(ctx)
	if !s.manual {
		s.done.Add(1)
		go s.tickLoop(ctx)
	}
	return s
}

// Validate checks what New takes on trust: scenario rules, faults and
// creditor IDs. Check options read from outside (a file, the environment)
// with it before calling New.
func (o Options) Validate() error {
	var errs []error
	for _, r := range o.Scenarios {
		errs = append(errs, r.validate())
	}
	errs = append(errs, o.Faults.validate())
	if o.Fees != nil {
		errs = append(errs, o.Fees.validate())
	}
	seen := map[string]bool{}
	for _, c := range o.Creditors {
		switch {
		case c.ID != "" && (!strings.HasPrefix(c.ID, prefixCreditor) || len(c.ID) <= len(prefixCreditor)):
			errs = append(errs, fmt.Errorf("creditor id %q does not start with %s", c.ID, prefixCreditor))
		case c.ID != "" && seen[c.ID]:
			errs = append(errs, fmt.Errorf("creditor id %q is given twice", c.ID))
		case c.CountryCode != "" && !validCountry(c.CountryCode):
			errs = append(errs, fmt.Errorf("creditor %q: country code %q is not ISO 3166-1 alpha-2", c.ID, c.CountryCode))
		}
		seen[c.ID] = true
	}
	if o.Webhook.URL != "" {
		if u, err := url.Parse(o.Webhook.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("webhook URL %q is not an http(s) URL", o.Webhook.URL))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gcsim options: %w", err)
	}
	return nil
}

func normalizeWebhook(w WebhookOptions) WebhookOptions {
	if w.BatchSize <= 0 {
		w.BatchSize = DefaultWebhookBatchSize
	}
	if w.MaxAttempts <= 0 {
		w.MaxAttempts = DefaultWebhookAttempts
	}
	if w.RetryBase <= 0 {
		w.RetryBase = DefaultWebhookRetryBase
	}
	if w.RetryMax <= 0 {
		w.RetryMax = DefaultWebhookRetryMax
	}
	if w.ReorderHold <= 0 {
		w.ReorderHold = DefaultWebhookReorderFor
	}
	return w
}

// Close stops background work and waits for it. In-flight webhook
// requests are abandoned.
func (s *Sim) Close() {
	s.stop()
	s.done.Wait()
}

// resetLocked empties every resource, event, key and delivery and restores
// the configured tokens and creditors. Scenarios, faults and the webhook
// endpoint are kept. Callers hold s.mu (or own s exclusively).
func (s *Sim) resetLocked() {
	s.usedIDs = make(map[string]bool)
	s.tokens = make(map[string]bool, len(s.baseToken))
	for _, t := range s.baseToken {
		s.tokens[t] = true
	}
	s.creditors = table[Creditor]{}
	s.customers = table[Customer]{}
	s.accounts = table[CustomerBankAccount]{}
	s.mandates = table[Mandate]{}
	s.payments = table[Payment]{}
	s.refunds = table[Refund]{}
	s.subs = table[Subscription]{}
	s.payouts = table[Payout]{}
	s.events = table[Event]{}
	s.billingRequests = table[BillingRequest]{}
	s.flows = table[BillingRequestFlow]{}
	s.idem = make(map[idemScope]string)
	s.jobs = nil
	s.openPay = make(map[string]*Payout)
	s.balances = make(map[string][]movement)
	s.outbox = nil
	s.delivs = nil
	s.limiter.reset()
	now := s.clock.Now()
	for _, c := range s.baseCred {
		s.addCreditor(c, now)
	}
}

// Reset forgets every resource, event, idempotency key, rate-limit window
// and webhook delivery, and re-enables the configured tokens. The clock,
// scenarios, faults and webhook endpoint are kept.
func (s *Sim) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Sim) nextSeq() uint64 {
	s.seq++
	return s.seq
}

// Now returns the simulated time.
func (s *Sim) Now() time.Time { return s.clock.Now() }

// Advance moves the clock forward by d (d <= 0 does nothing) and applies
// every transition that falls due, in time order, before returning. It
// returns the new time.
func (s *Sim) Advance(d time.Duration) time.Time {
	s.clock.Advance(d)
	s.mu.Lock()
	now := s.clock.Now()
	s.runDue(now)
	s.mu.Unlock()
	s.kick()
	return now
}

func (s *Sim) tickLoop(ctx context.Context) {
	defer s.done.Done()
	t := time.NewTicker(s.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			s.runDue(s.clock.Now())
			s.mu.Unlock()
			s.kick()
		}
	}
}

// SetTokenActive adds token to the accepted access tokens (active) or
// revokes it, so that tests can see how a client handles a token
// invalidated mid-run.
func (s *Sim) SetTokenActive(token string, active bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = active
}

func (s *Sim) addCreditor(c Creditor, now time.Time) {
	if c.CountryCode == "" {
		c.CountryCode = "GB"
	}
	if c.Name == "" {
		c.Name = "Simulated Creditor"
	}
	if c.ID == "" {
		c.ID = s.newID(prefixCreditor)
	}
	s.usedIDs[c.ID] = true
	cr := Creditor{
		ID:                 c.ID,
		CreatedAt:          formatTime(now),
		Name:               c.Name,
		AddressLine1:       "1 Simulation Street",
		City:               "London",
		PostalCode:         "EC1V 7LQ",
		CountryCode:        c.CountryCode,
		CanCreateRefunds:   true,
		VerificationStatus: "successful",
		Links:              map[string]string{},
		CreditorType:       "company",

		CustomPaymentPagesEnabled: c.CustomPaymentPagesEnabled,
		CustomPaymentReferences:   c.CustomPaymentReferences,

		seq: s.nextSeq(),
	}
	for _, sc := range schemes {
		cr.SchemeIdentifiers = append(cr.SchemeIdentifiers, SchemeIdentifier{
			Name:                 c.Name,
			Scheme:               sc.name,
			Currency:             sc.currency,
			Reference:            fmt.Sprintf("SIM-%s-%s", sc.name, c.ID[len(c.ID)-4:]),
			MinimumAdvanceNotice: sc.leadDays + 1,
		})
		cr.Links["default_"+strings.ToLower(sc.currency)+"_payout_account"] = s.newID(prefixBankAccount)
	}
	s.creditors.add(cr.ID, &cr)
}

// ApprovedCreditor is the default creditor as GoCardless would have it
// after approving it for custom payment pages (direct customer bank
// account and mandate creation) on a package that allows its own Bacs
// payment references: what integrations built for the direct path need.
func ApprovedCreditor() Creditor {
	return Creditor{ID: DefaultCreditorID, Name: "Simulated Creditor Ltd", CountryCode: "GB",
		CustomPaymentPagesEnabled: true, CustomPaymentReferences: true}
}

// Accessors for in-process tests. Each returns copies in creation order.

// Creditors returns every creditor.
func (s *Sim) Creditors() []Creditor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneAll(s.creditors.list, Creditor.clone)
}

// Customers returns every customer.
func (s *Sim) Customers() []Customer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneAll(s.customers.list, Customer.clone)
}

// BankAccounts returns every customer bank account.
func (s *Sim) BankAccounts() []CustomerBankAccount {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneAll(s.accounts.list, CustomerBankAccount.clone)
}

// Mandates returns every mandate, with its current next_possible_charge_date.
func (s *Sim) Mandates() []Mandate {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	out := make([]Mandate, 0, len(s.mandates.list))
	for _, m := range s.mandates.list {
		out = append(out, s.viewMandate(m, now))
	}
	return out
}

// Payments returns every payment.
func (s *Sim) Payments() []Payment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneAll(s.payments.list, Payment.clone)
}

// Refunds returns every refund.
func (s *Sim) Refunds() []Refund {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneAll(s.refunds.list, Refund.clone)
}

// Subscriptions returns every subscription, with its upcoming payments.
func (s *Sim) Subscriptions() []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Subscription, 0, len(s.subs.list))
	for _, sub := range s.subs.list {
		out = append(out, s.viewSubscription(sub))
	}
	return out
}

// Payouts returns every payout.
func (s *Sim) Payouts() []Payout {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneAll(s.payouts.list, Payout.clone)
}

// PayoutItems returns the items of a payout, in the order it took them
// (none for an unknown payout).
func (s *Sim) PayoutItems(payoutID string) []PayoutItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	po, ok := s.payouts.get(payoutID)
	if !ok {
		return nil
	}
	return cloneAll(po.items, PayoutItem.clone)
}

// Events returns every event, oldest first.
func (s *Sim) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneAll(s.events.list, Event.clone)
}

// EventsFrom returns the events after the first n, oldest first: a
// watcher that keeps its count reads each event once, where Events would
// copy the whole history, under the lock the API also needs, every time.
func (s *Sim) EventsFrom(n int) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneAll(s.events.list[min(max(n, 0), len(s.events.list)):], Event.clone)
}

func cloneAll[T any](list []*T, clone func(T) T) []T {
	out := make([]T, 0, len(list))
	for _, v := range list {
		out = append(out, clone(*v))
	}
	return out
}
