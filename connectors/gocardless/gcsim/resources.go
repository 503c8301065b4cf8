package gcsim

import (
	"maps"
	"slices"
	"time"
)

// The resource types below are the simulator's own records, marshalled as
// GoCardless renders them. Accessors on [Sim] return copies.

// Creditor is a GoCardless creditor (the merchant account payments are
// collected for).
type Creditor struct {
	ID                 string             `json:"id"`
	CreatedAt          string             `json:"created_at"`
	Name               string             `json:"name"`
	AddressLine1       string             `json:"address_line1"`
	AddressLine2       string             `json:"address_line2"`
	AddressLine3       string             `json:"address_line3"`
	City               string             `json:"city"`
	Region             string             `json:"region"`
	PostalCode         string             `json:"postal_code"`
	CountryCode        string             `json:"country_code"`
	CanCreateRefunds   bool               `json:"can_create_refunds"`
	VerificationStatus string             `json:"verification_status"`
	SchemeIdentifiers  []SchemeIdentifier `json:"scheme_identifiers"`
	Links              map[string]string  `json:"links"`
	// CustomPaymentPagesEnabled says GoCardless approved the creditor for
	// custom payment pages: only then may it create customer bank accounts
	// and mandates directly through the API. Everyone else sets mandates
	// up through billing requests ("If you'd like to build your own custom
	// payment pages using the Billing Requests API, please contact our
	// sales team": developer.gocardless.com/getting-started/api/adding-your-first-customer).
	// A real account starts without it, and so does a simulated creditor.
	CustomPaymentPagesEnabled           bool   `json:"custom_payment_pages_enabled"`
	MandateImportsEnabled               bool   `json:"mandate_imports_enabled"`
	MerchantResponsibleForNotifications bool   `json:"merchant_responsible_for_notifications"`
	BankReferencePrefix                 string `json:"bank_reference_prefix"`
	CreditorType                        string `json:"creditor_type"`
	FxPayoutCurrency                    string `json:"fx_payout_currency"`
	LogoURL                             string `json:"logo_url"`
	// CustomPaymentReferences says the creditor's GoCardless package
	// (Plus, Pro or Enterprise) lets it set its own Bacs payment
	// references (gocardless-pro-java PaymentService.java, reference:
	// "You can only specify a payment reference for Bacs payments ... if
	// you're on the GoCardless Plus, Pro or Enterprise packages"). It is
	// not an API attribute, so it is not rendered.
	CustomPaymentReferences bool `json:"-"`

	seq uint64
}

// SchemeIdentifier is one of a creditor's scheme identifiers.
type SchemeIdentifier struct {
	Name                 string `json:"name"`
	Scheme               string `json:"scheme"`
	Currency             string `json:"currency"`
	Reference            string `json:"reference"`
	MinimumAdvanceNotice int    `json:"minimum_advance_notice"`
}

// Customer is a GoCardless customer.
type Customer struct {
	ID                    string            `json:"id"`
	CreatedAt             string            `json:"created_at"`
	Email                 string            `json:"email"`
	GivenName             string            `json:"given_name"`
	FamilyName            string            `json:"family_name"`
	CompanyName           string            `json:"company_name"`
	AddressLine1          string            `json:"address_line1"`
	AddressLine2          string            `json:"address_line2"`
	AddressLine3          string            `json:"address_line3"`
	City                  string            `json:"city"`
	Region                string            `json:"region"`
	PostalCode            string            `json:"postal_code"`
	CountryCode           string            `json:"country_code"`
	Language              string            `json:"language"`
	PhoneNumber           string            `json:"phone_number"`
	SwedishIdentityNumber string            `json:"swedish_identity_number"`
	DanishIdentityNumber  string            `json:"danish_identity_number"`
	Metadata              map[string]string `json:"metadata"`

	seq     uint64
	created time.Time
}

// CustomerBankAccount is a customer's bank account.
type CustomerBankAccount struct {
	ID                  string            `json:"id"`
	CreatedAt           string            `json:"created_at"`
	AccountHolderName   string            `json:"account_holder_name"`
	AccountNumberEnding string            `json:"account_number_ending"`
	AccountType         string            `json:"account_type"`
	BankName            string            `json:"bank_name"`
	CountryCode         string            `json:"country_code"`
	Currency            string            `json:"currency"`
	Enabled             bool              `json:"enabled"`
	Links               BankAccountLinks  `json:"links"`
	Metadata            map[string]string `json:"metadata"`

	seq         uint64
	created     time.Time
	fingerprint string // normalized account details, to refuse duplicates
}

// BankAccountLinks are a bank account's links.
type BankAccountLinks struct {
	Customer string `json:"customer"`
}

// Mandate is a Direct Debit mandate.
type Mandate struct {
	ID                      string            `json:"id"`
	CreatedAt               string            `json:"created_at"`
	Reference               string            `json:"reference"`
	Scheme                  string            `json:"scheme"`
	Status                  string            `json:"status"`
	NextPossibleChargeDate  *string           `json:"next_possible_charge_date"`
	PaymentsRequireApproval bool              `json:"payments_require_approval"`
	Links                   MandateLinks      `json:"links"`
	Metadata                map[string]string `json:"metadata"`
	// AuthorisationSource is ACH's SEC code source (web, telephone,
	// paper); PayerIPAddress is kept but, as GoCardless does, not shown.
	AuthorisationSource string `json:"authorisation_source"`
	VerifiedAt          string `json:"verified_at"`
	FundsSettlement     string `json:"funds_settlement"`
	MandateType         string `json:"mandate_type"`

	seq        uint64
	created    time.Time
	activeFrom time.Time // scheduled or actual activation run
	// reinstates counts the reinstate actions taken; reinstating is set
	// from one until the mandate is set up again (reinstated, not active).
	reinstates  int
	reinstating bool
}

// MandateLinks are a mandate's links.
type MandateLinks struct {
	Creditor            string `json:"creditor"`
	Customer            string `json:"customer"`
	CustomerBankAccount string `json:"customer_bank_account"`
	NewMandate          string `json:"new_mandate,omitempty"`
}

// Payment is a one-off or subscription payment.
type Payment struct {
	ID              string            `json:"id"`
	CreatedAt       string            `json:"created_at"`
	ChargeDate      string            `json:"charge_date"`
	Amount          int64             `json:"amount"`
	AmountRefunded  int64             `json:"amount_refunded"`
	Currency        string            `json:"currency"`
	Description     string            `json:"description"`
	Reference       string            `json:"reference"`
	Scheme          string            `json:"scheme"`
	Status          string            `json:"status"`
	RetryIfPossible bool              `json:"retry_if_possible"`
	Links           PaymentLinks      `json:"links"`
	Metadata        map[string]string `json:"metadata"`

	seq         uint64
	created     time.Time
	attempts    int // submissions so far
	retries     int // manual and automatic retries so far
	autoRetries int
}

// PaymentLinks are a payment's links.
type PaymentLinks struct {
	Creditor     string `json:"creditor"`
	Mandate      string `json:"mandate"`
	Payout       string `json:"payout,omitempty"`
	Subscription string `json:"subscription,omitempty"`
}

// Refund is a refund of (part of) a payment.
type Refund struct {
	ID        string            `json:"id"`
	CreatedAt string            `json:"created_at"`
	Amount    int64             `json:"amount"`
	Currency  string            `json:"currency"`
	Reference string            `json:"reference"`
	Status    string            `json:"status"`
	Links     RefundLinks       `json:"links"`
	Metadata  map[string]string `json:"metadata"`

	seq     uint64
	created time.Time
}

// RefundLinks are a refund's links.
type RefundLinks struct {
	Payment string `json:"payment"`
	Mandate string `json:"mandate"`
}

// Subscription collects a fixed amount on a schedule.
type Subscription struct {
	ID               string            `json:"id"`
	CreatedAt        string            `json:"created_at"`
	Amount           int64             `json:"amount"`
	Currency         string            `json:"currency"`
	Status           string            `json:"status"`
	Name             string            `json:"name"`
	StartDate        string            `json:"start_date"`
	EndDate          string            `json:"end_date"`
	IntervalUnit     string            `json:"interval_unit"`
	Interval         int               `json:"interval"`
	DayOfMonth       *int              `json:"day_of_month"`
	Month            string            `json:"month"`
	Count            *int              `json:"count"`
	PaymentReference string            `json:"payment_reference"`
	RetryIfPossible  bool              `json:"retry_if_possible"`
	UpcomingPayments []UpcomingPayment `json:"upcoming_payments"`
	Links            SubscriptionLinks `json:"links"`
	Metadata         map[string]string `json:"metadata"`

	seq         uint64
	created     time.Time
	first       time.Time // unrolled date of the first charge
	next        int       // index of the next charge to create a payment for
	pauseCycles int       // charges still to skip while paused with pause_cycles
	gen         int       // supersedes earlier scheduled charges when rescheduled
}

// UpcomingPayment is a subscription's future charge.
type UpcomingPayment struct {
	ChargeDate string `json:"charge_date"`
	Amount     int64  `json:"amount"`
}

// SubscriptionLinks are a subscription's links.
type SubscriptionLinks struct {
	Mandate string `json:"mandate"`
}

// Payout is money GoCardless sends to the creditor (payouts.json).
// ArrivalDate is empty (null) until the payout is paid ("null: the payout
// hasn't been paid yet", gocardless-pro-java Payout.java); TaxCurrency is
// empty (null) for creditors whose fees bear no tax. fx is always null:
// the simulator pays out in the collection currency.
type Payout struct {
	ID           string            `json:"id"`
	CreatedAt    string            `json:"created_at"`
	Amount       int64             `json:"amount"`
	ArrivalDate  string            `json:"arrival_date"`
	Currency     string            `json:"currency"`
	DeductedFees int64             `json:"deducted_fees"`
	PayoutType   string            `json:"payout_type"`
	Reference    string            `json:"reference"`
	Status       string            `json:"status"`
	TaxCurrency  string            `json:"tax_currency"`
	Links        PayoutLinks       `json:"links"`
	Metadata     map[string]string `json:"metadata"`

	seq     uint64
	created time.Time
	items   []*PayoutItem
	sum     int64 // of the items, in tenths of the minor unit
	fees    int64 // of the fee items, in tenths
}

// PayoutLinks are a payout's links.
type PayoutLinks struct {
	Creditor            string `json:"creditor"`
	CreditorBankAccount string `json:"creditor_bank_account"`
}

// Event records one change to a resource.
type Event struct {
	ID               string            `json:"id"`
	CreatedAt        string            `json:"created_at"`
	ResourceType     string            `json:"resource_type"`
	Action           string            `json:"action"`
	Links            map[string]string `json:"links"`
	Details          EventDetails      `json:"details"`
	Metadata         map[string]string `json:"metadata"`
	ResourceMetadata map[string]string `json:"resource_metadata"`

	seq     uint64
	created time.Time
}

// EventDetails explain an event. Integrations branch on Cause.
type EventDetails struct {
	Origin           string `json:"origin"`
	Cause            string `json:"cause"`
	Description      string `json:"description"`
	Scheme           string `json:"scheme,omitempty"`
	ReasonCode       string `json:"reason_code,omitempty"`
	WillAttemptRetry *bool  `json:"will_attempt_retry,omitempty"`
}

// Copies, so that callers never share maps with the simulator's state.

func (c Creditor) clone() Creditor {
	c.SchemeIdentifiers = slices.Clone(c.SchemeIdentifiers)
	c.Links = maps.Clone(c.Links)
	return c
}

func (c Customer) clone() Customer { c.Metadata = maps.Clone(c.Metadata); return c }

func (b CustomerBankAccount) clone() CustomerBankAccount {
	b.Metadata = maps.Clone(b.Metadata)
	return b
}

func (m Mandate) clone() Mandate {
	m.Metadata = maps.Clone(m.Metadata)
	if m.NextPossibleChargeDate != nil {
		d := *m.NextPossibleChargeDate
		m.NextPossibleChargeDate = &d
	}
	return m
}

func (p Payment) clone() Payment { p.Metadata = maps.Clone(p.Metadata); return p }

func (r Refund) clone() Refund { r.Metadata = maps.Clone(r.Metadata); return r }

func (s Subscription) clone() Subscription {
	s.Metadata = maps.Clone(s.Metadata)
	s.UpcomingPayments = slices.Clone(s.UpcomingPayments)
	if s.DayOfMonth != nil {
		d := *s.DayOfMonth
		s.DayOfMonth = &d
	}
	if s.Count != nil {
		c := *s.Count
		s.Count = &c
	}
	return s
}

func (p Payout) clone() Payout {
	p.Metadata = maps.Clone(p.Metadata)
	p.items = nil
	return p
}

func (e Event) clone() Event {
	e.Links = maps.Clone(e.Links)
	e.Metadata = maps.Clone(e.Metadata)
	e.ResourceMetadata = maps.Clone(e.ResourceMetadata)
	if e.Details.WillAttemptRetry != nil {
		b := *e.Details.WillAttemptRetry
		e.Details.WillAttemptRetry = &b
	}
	return e
}

// nonNil returns m, or an empty map so that JSON shows {} rather than null.
func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
