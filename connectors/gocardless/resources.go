package gocardless

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Dates (charge_date, start_date, ...) are strings in the YYYY-MM-DD form
// GoCardless uses; timestamps are time.Time. Amounts are int64 minor
// units of Currency (pence, cents, öre).

// Creditor is the account collecting the money.
type Creditor struct {
	ID           string    `json:"id"`
	CreatedAt    time.Time `json:"created_at"`
	Name         string    `json:"name"`
	AddressLine1 string    `json:"address_line1"`
	AddressLine2 string    `json:"address_line2"`
	AddressLine3 string    `json:"address_line3"`
	City         string    `json:"city"`
	Region       string    `json:"region"`
	PostalCode   string    `json:"postal_code"`
	CountryCode  string    `json:"country_code"`
	// SchemeIdentifiers are the names and references the creditor
	// collects under, per scheme; the payer's bank statement shows them.
	SchemeIdentifiers  []SchemeIdentifier `json:"scheme_identifiers"`
	CanCreateRefunds   bool               `json:"can_create_refunds"`
	VerificationStatus string             `json:"verification_status"`
	// CustomPaymentPagesEnabled: GoCardless approved the creditor for
	// creating customer bank accounts and mandates directly. Without it,
	// mandates are set up through billing requests.
	CustomPaymentPagesEnabled bool              `json:"custom_payment_pages_enabled"`
	Links                     map[string]string `json:"links"`
}

// SchemeIdentifier is a creditor's identity in one scheme.
type SchemeIdentifier struct {
	Name                 string `json:"name"`
	Scheme               string `json:"scheme"`
	Currency             string `json:"currency"`
	Reference            string `json:"reference"`
	MinimumAdvanceNotice int    `json:"minimum_advance_notice"` // days
}

// ListCreditors lists the creditors of the account.
func (c *Client) ListCreditors(ctx context.Context, p ListParams) (*Page[Creditor], error) {
	q := url.Values{}
	if err := p.encode(q); err != nil {
		return nil, fmt.Errorf("gocardless: list creditors: %w", err)
	}
	page, _, err := list[Creditor](ctx, c, creditors, q)
	return page, err
}

// GetCreditor fetches a creditor.
func (c *Client) GetCreditor(ctx context.Context, id string) (*Creditor, error) {
	return get[Creditor](ctx, c, creditors, id)
}

// Customer is a payer.
type Customer struct {
	ID                    string            `json:"id"`
	CreatedAt             time.Time         `json:"created_at"`
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
}

// CustomerParams are the fields of a customer create or update; empty
// fields are not sent, so an update leaves them as they are.
type CustomerParams struct {
	Email                 string            `json:"email,omitempty"`
	GivenName             string            `json:"given_name,omitempty"`
	FamilyName            string            `json:"family_name,omitempty"`
	CompanyName           string            `json:"company_name,omitempty"`
	AddressLine1          string            `json:"address_line1,omitempty"`
	AddressLine2          string            `json:"address_line2,omitempty"`
	AddressLine3          string            `json:"address_line3,omitempty"`
	City                  string            `json:"city,omitempty"`
	Region                string            `json:"region,omitempty"`
	PostalCode            string            `json:"postal_code,omitempty"`
	CountryCode           string            `json:"country_code,omitempty"`
	Language              string            `json:"language,omitempty"`
	PhoneNumber           string            `json:"phone_number,omitempty"`
	SwedishIdentityNumber string            `json:"swedish_identity_number,omitempty"`
	DanishIdentityNumber  string            `json:"danish_identity_number,omitempty"`
	Metadata              map[string]string `json:"metadata,omitempty"`
}

// CreateCustomer creates a customer. existed reports that key had already
// created one, which is returned instead (see the package doc).
func (c *Client) CreateCustomer(ctx context.Context, key string, p CustomerParams) (cu *Customer, existed bool, err error) {
	return create[Customer](ctx, c, customers, key, p)
}

// GetCustomer fetches a customer.
func (c *Client) GetCustomer(ctx context.Context, id string) (*Customer, error) {
	return get[Customer](ctx, c, customers, id)
}

// UpdateCustomer sets the non-empty fields of p on the customer.
func (c *Client) UpdateCustomer(ctx context.Context, id string, p CustomerParams) (*Customer, error) {
	return update[Customer](ctx, c, customers, id, p)
}

// ListCustomers lists customers.
func (c *Client) ListCustomers(ctx context.Context, p ListParams) (*Page[Customer], error) {
	q := url.Values{}
	if err := p.encode(q); err != nil {
		return nil, fmt.Errorf("gocardless: list customers: %w", err)
	}
	page, _, err := list[Customer](ctx, c, customers, q)
	return page, err
}

// CustomerBankAccount is the account a customer pays from.
type CustomerBankAccount struct {
	ID                  string            `json:"id"`
	CreatedAt           time.Time         `json:"created_at"`
	AccountHolderName   string            `json:"account_holder_name"`
	AccountNumberEnding string            `json:"account_number_ending"`
	AccountType         string            `json:"account_type"`
	BankName            string            `json:"bank_name"`
	CountryCode         string            `json:"country_code"`
	Currency            string            `json:"currency"`
	Enabled             bool              `json:"enabled"`
	Metadata            map[string]string `json:"metadata"`
	Links               struct {
		Customer string `json:"customer"`
	} `json:"links"`
}

// CustomerBankAccountParams create a bank account: either IBAN, or
// AccountNumber with BranchCode (and BankCode where the country has one).
type CustomerBankAccountParams struct {
	AccountHolderName string            `json:"account_holder_name"`
	AccountNumber     string            `json:"account_number,omitempty"`
	BranchCode        string            `json:"branch_code,omitempty"`
	BankCode          string            `json:"bank_code,omitempty"`
	IBAN              string            `json:"iban,omitempty"`
	CountryCode       string            `json:"country_code,omitempty"`
	Currency          string            `json:"currency,omitempty"`
	AccountType       string            `json:"account_type,omitempty"` // USD only: checking or savings
	Metadata          map[string]string `json:"metadata,omitempty"`
	Links             struct {
		Customer string `json:"customer"`
	} `json:"links"`
}

// CreateCustomerBankAccount adds a bank account to a customer. existed
// reports that the account was there already and is returned instead:
// either key had created it, or GoCardless refused a duplicate with
// bank_account_exists naming the account it holds (which is then
// fetched; its account_holder_name may differ from p's). A creditor
// without custom payment pages is refused with a 403 (IsForbidden).
func (c *Client) CreateCustomerBankAccount(ctx context.Context, key string, p CustomerBankAccountParams) (ba *CustomerBankAccount, existed bool, err error) {
	ba, existed, err = create[CustomerBankAccount](ctx, c, customerBankAccounts, key, p)
	if id, ok := ExistingBankAccount(err); ok {
		ba, gerr := c.GetCustomerBankAccount(ctx, id)
		if gerr != nil {
			return nil, false, fmt.Errorf("gocardless: fetch existing bank account %s: %w (after %w)", id, gerr, err)
		}
		return ba, true, nil
	}
	return ba, existed, err
}

// GetCustomerBankAccount fetches a bank account.
func (c *Client) GetCustomerBankAccount(ctx context.Context, id string) (*CustomerBankAccount, error) {
	return get[CustomerBankAccount](ctx, c, customerBankAccounts, id)
}

// CustomerBankAccountListParams filter ListCustomerBankAccounts.
type CustomerBankAccountListParams struct {
	ListParams
	Customer string
	Enabled  *bool
}

// ListCustomerBankAccounts lists bank accounts.
func (c *Client) ListCustomerBankAccounts(ctx context.Context, p CustomerBankAccountListParams) (*Page[CustomerBankAccount], error) {
	q := url.Values{}
	if err := p.encode(q); err != nil {
		return nil, fmt.Errorf("gocardless: list customer bank accounts: %w", err)
	}
	set(q, "customer", p.Customer)
	if p.Enabled != nil {
		q.Set("enabled", strconv.FormatBool(*p.Enabled))
	}
	page, _, err := list[CustomerBankAccount](ctx, c, customerBankAccounts, q)
	return page, err
}

// DisableCustomerBankAccount disables a bank account for good, cancelling
// its mandates.
func (c *Client) DisableCustomerBankAccount(ctx context.Context, key, id string) (*CustomerBankAccount, error) {
	return action(ctx, c, customerBankAccounts, id, "disable", key, struct{}{},
		func(b *CustomerBankAccount) bool { return !b.Enabled })
}

// Mandate authorises collecting from a bank account.
type Mandate struct {
	ID                      string            `json:"id"`
	CreatedAt               time.Time         `json:"created_at"`
	Reference               string            `json:"reference"`
	Scheme                  string            `json:"scheme"`
	Status                  string            `json:"status"`
	NextPossibleChargeDate  string            `json:"next_possible_charge_date"`
	PaymentsRequireApproval bool              `json:"payments_require_approval"`
	AuthorisationSource     string            `json:"authorisation_source"`
	Metadata                map[string]string `json:"metadata"`
	Links                   struct {
		Customer            string `json:"customer"`
		CustomerBankAccount string `json:"customer_bank_account"`
		Creditor            string `json:"creditor"`
		NewMandate          string `json:"new_mandate"`
	} `json:"links"`
}

// MandateParams create a mandate. An ACH mandate needs PayerIPAddress
// unless AuthorisationSource is telephone or paper (gocardless-pro-java
// MandateService.java).
type MandateParams struct {
	Scheme              string            `json:"scheme,omitempty"` // inferred from the bank account when empty
	Reference           string            `json:"reference,omitempty"`
	AuthorisationSource string            `json:"authorisation_source,omitempty"` // ACH: web, telephone or paper
	PayerIPAddress      string            `json:"payer_ip_address,omitempty"`
	Metadata            map[string]string `json:"metadata,omitempty"`
	Links               struct {
		CustomerBankAccount string `json:"customer_bank_account"`
		Creditor            string `json:"creditor,omitempty"` // needed with several creditors
	} `json:"links"`
}

// CreateMandate creates a mandate. existed reports that key had already
// created one, which is returned instead.
func (c *Client) CreateMandate(ctx context.Context, key string, p MandateParams) (m *Mandate, existed bool, err error) {
	return create[Mandate](ctx, c, mandates, key, p)
}

// GetMandate fetches a mandate.
func (c *Client) GetMandate(ctx context.Context, id string) (*Mandate, error) {
	return get[Mandate](ctx, c, mandates, id)
}

// MandateListParams filter ListMandates.
type MandateListParams struct {
	ListParams
	Customer            string
	CustomerBankAccount string
	Creditor            string
	Reference           string
	Scheme              []string
	Status              []string
}

// ListMandates lists mandates.
func (c *Client) ListMandates(ctx context.Context, p MandateListParams) (*Page[Mandate], error) {
	q := url.Values{}
	if err := p.encode(q); err != nil {
		return nil, fmt.Errorf("gocardless: list mandates: %w", err)
	}
	set(q, "customer", p.Customer)
	set(q, "customer_bank_account", p.CustomerBankAccount)
	set(q, "creditor", p.Creditor)
	set(q, "reference", p.Reference)
	set(q, "scheme", strings.Join(p.Scheme, ","))
	set(q, "status", strings.Join(p.Status, ","))
	page, _, err := list[Mandate](ctx, c, mandates, q)
	return page, err
}

// ActionParams are the optional data of an action.
type ActionParams struct {
	Metadata map[string]string `json:"metadata,omitempty"`
}

// CancelMandate cancels a mandate and its pending payments and
// subscriptions.
func (c *Client) CancelMandate(ctx context.Context, key, id string, p ActionParams) (*Mandate, error) {
	return action(ctx, c, mandates, id, "cancel", key, p,
		func(m *Mandate) bool { return m.Status == "cancelled" })
}

// Payment is a collection from a mandate.
type Payment struct {
	ID              string            `json:"id"`
	CreatedAt       time.Time         `json:"created_at"`
	ChargeDate      string            `json:"charge_date"`
	Amount          int64             `json:"amount"`
	AmountRefunded  int64             `json:"amount_refunded"`
	Currency        string            `json:"currency"`
	Description     string            `json:"description"`
	Reference       string            `json:"reference"`
	Scheme          string            `json:"scheme"`
	Status          string            `json:"status"`
	RetryIfPossible bool              `json:"retry_if_possible"`
	Metadata        map[string]string `json:"metadata"`
	Links           struct {
		Mandate      string `json:"mandate"`
		Creditor     string `json:"creditor"`
		Payout       string `json:"payout"`
		Subscription string `json:"subscription"`
	} `json:"links"`
}

// PaymentParams create a payment.
type PaymentParams struct {
	Amount          int64             `json:"amount"`
	Currency        string            `json:"currency"`
	ChargeDate      string            `json:"charge_date,omitempty"` // earliest possible when empty
	Reference       string            `json:"reference,omitempty"`
	Description     string            `json:"description,omitempty"`
	RetryIfPossible *bool             `json:"retry_if_possible,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	Links           struct {
		Mandate string `json:"mandate"`
	} `json:"links"`
}

// CreatePayment creates a payment. existed reports that key had already
// created one, which is returned instead: compare it with p if the key
// could have been reused for a different request.
func (c *Client) CreatePayment(ctx context.Context, key string, p PaymentParams) (pm *Payment, existed bool, err error) {
	return create[Payment](ctx, c, payments, key, p)
}

// GetPayment fetches a payment.
func (c *Client) GetPayment(ctx context.Context, id string) (*Payment, error) {
	return get[Payment](ctx, c, payments, id)
}

// PaymentListParams filter ListPayments.
type PaymentListParams struct {
	ListParams
	Customer     string
	Mandate      string
	Subscription string
	Creditor     string
	Currency     string
	Status       string
	ChargeDate   DateRange
}

// ListPayments lists payments.
func (c *Client) ListPayments(ctx context.Context, p PaymentListParams) (*Page[Payment], error) {
	q := url.Values{}
	if err := p.encode(q); err != nil {
		return nil, fmt.Errorf("gocardless: list payments: %w", err)
	}
	set(q, "customer", p.Customer)
	set(q, "mandate", p.Mandate)
	set(q, "subscription", p.Subscription)
	set(q, "creditor", p.Creditor)
	set(q, "currency", p.Currency)
	set(q, "status", p.Status)
	p.ChargeDate.encode(q, "charge_date")
	page, _, err := list[Payment](ctx, c, payments, q)
	return page, err
}

// CancelPayment cancels a payment not yet submitted to the banks.
func (c *Client) CancelPayment(ctx context.Context, key, id string, p ActionParams) (*Payment, error) {
	return action(ctx, c, payments, id, "cancel", key, p,
		func(pm *Payment) bool { return pm.Status == "cancelled" })
}

// RetryParams are the data of a payment retry.
type RetryParams struct {
	ChargeDate string            `json:"charge_date,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
}

// RetryPayment submits a failed payment again.
func (c *Client) RetryPayment(ctx context.Context, key, id string, p RetryParams) (*Payment, error) {
	return action(ctx, c, payments, id, "retry", key, p,
		func(pm *Payment) bool { return pm.Status != "failed" })
}

// Refund returns (part of) a payment to the customer.
type Refund struct {
	ID        string            `json:"id"`
	CreatedAt time.Time         `json:"created_at"`
	Amount    int64             `json:"amount"`
	Currency  string            `json:"currency"`
	Reference string            `json:"reference"`
	Status    string            `json:"status"`
	Metadata  map[string]string `json:"metadata"`
	Links     struct {
		Payment string `json:"payment"`
		Mandate string `json:"mandate"`
	} `json:"links"`
}

// RefundParams create a refund. TotalAmountConfirmation is the sum of all
// refunds of the payment including this one: GoCardless refuses the
// refund if it disagrees, which stops a replayed refund paying twice.
type RefundParams struct {
	Amount                  int64             `json:"amount"`
	TotalAmountConfirmation int64             `json:"total_amount_confirmation"`
	Reference               string            `json:"reference,omitempty"`
	Metadata                map[string]string `json:"metadata,omitempty"`
	Links                   struct {
		Payment string `json:"payment"`
	} `json:"links"`
}

// CreateRefund creates a refund. existed reports that key had already
// created one, which is returned instead.
func (c *Client) CreateRefund(ctx context.Context, key string, p RefundParams) (rf *Refund, existed bool, err error) {
	return create[Refund](ctx, c, refunds, key, p)
}

// GetRefund fetches a refund.
func (c *Client) GetRefund(ctx context.Context, id string) (*Refund, error) {
	return get[Refund](ctx, c, refunds, id)
}

// RefundListParams filter ListRefunds.
type RefundListParams struct {
	ListParams
	Payment string
	Mandate string
}

// ListRefunds lists refunds.
func (c *Client) ListRefunds(ctx context.Context, p RefundListParams) (*Page[Refund], error) {
	q := url.Values{}
	if err := p.encode(q); err != nil {
		return nil, fmt.Errorf("gocardless: list refunds: %w", err)
	}
	set(q, "payment", p.Payment)
	set(q, "mandate", p.Mandate)
	page, _, err := list[Refund](ctx, c, refunds, q)
	return page, err
}

// Subscription creates payments on a schedule.
type Subscription struct {
	ID               string            `json:"id"`
	CreatedAt        time.Time         `json:"created_at"`
	Amount           int64             `json:"amount"`
	Currency         string            `json:"currency"`
	Status           string            `json:"status"`
	Name             string            `json:"name"`
	StartDate        string            `json:"start_date"`
	EndDate          string            `json:"end_date"`
	IntervalUnit     string            `json:"interval_unit"`
	Interval         int               `json:"interval"`
	DayOfMonth       int               `json:"day_of_month"`
	Month            string            `json:"month"`
	Count            int               `json:"count"`
	PaymentReference string            `json:"payment_reference"`
	RetryIfPossible  bool              `json:"retry_if_possible"`
	UpcomingPayments []UpcomingPayment `json:"upcoming_payments"`
	Metadata         map[string]string `json:"metadata"`
	Links            struct {
		Mandate string `json:"mandate"`
	} `json:"links"`
}

// UpcomingPayment is a payment a subscription will create.
type UpcomingPayment struct {
	ChargeDate string `json:"charge_date"`
	Amount     int64  `json:"amount"`
}

// SubscriptionParams create a subscription.
type SubscriptionParams struct {
	Amount       int64  `json:"amount"`
	Currency     string `json:"currency"`
	IntervalUnit string `json:"interval_unit"` // weekly, monthly or yearly
	Interval     int    `json:"interval,omitempty"`
	DayOfMonth   int    `json:"day_of_month,omitempty"` // 1..28 or -1 (last day)
	// Month is lowercase ("january"; see MonthName) and only for yearly
	// subscriptions, where it goes with DayOfMonth.
	Month            string            `json:"month,omitempty"`
	Count            int               `json:"count,omitempty"`
	StartDate        string            `json:"start_date,omitempty"`
	EndDate          string            `json:"end_date,omitempty"`
	Name             string            `json:"name,omitempty"`
	PaymentReference string            `json:"payment_reference,omitempty"`
	RetryIfPossible  *bool             `json:"retry_if_possible,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	Links            struct {
		Mandate string `json:"mandate"`
	} `json:"links"`
}

// CreateSubscription creates a subscription. existed reports that key had
// already created one, which is returned instead. The recurrence rules
// GoCardless documents are checked first (gocardless-pro-java
// SubscriptionService.java): month "Must be lowercase. Only applies when
// the interval_unit is yearly"; for yearly, month and day_of_month are
// given together or not at all; weekly takes neither.
func (c *Client) CreateSubscription(ctx context.Context, key string, p SubscriptionParams) (s *Subscription, existed bool, err error) {
	if err := p.checkRecurrence(); err != nil {
		return nil, false, fmt.Errorf("gocardless: subscription: %w", err)
	}
	return create[Subscription](ctx, c, subscriptions, key, p)
}

func (p SubscriptionParams) checkRecurrence() error {
	switch {
	case p.Month != "" && p.Month != strings.ToLower(p.Month):
		return fmt.Errorf("month %q must be lowercase", p.Month)
	case p.Month != "" && p.IntervalUnit != "yearly":
		return fmt.Errorf("month is only for yearly subscriptions, not %s", p.IntervalUnit)
	case p.IntervalUnit == "yearly" && (p.Month == "") != (p.DayOfMonth == 0):
		return errors.New("a yearly subscription takes month and day_of_month together, or neither")
	case p.IntervalUnit == "weekly" && p.DayOfMonth != 0:
		return errors.New("day_of_month is not for weekly subscriptions")
	}
	return nil
}

// MonthName is the name GoCardless takes for m ("january").
func MonthName(m time.Month) string { return strings.ToLower(m.String()) }

// GetSubscription fetches a subscription.
func (c *Client) GetSubscription(ctx context.Context, id string) (*Subscription, error) {
	return get[Subscription](ctx, c, subscriptions, id)
}

// SubscriptionListParams filter ListSubscriptions.
type SubscriptionListParams struct {
	ListParams
	Customer string
	Mandate  string
	Status   []string
}

// ListSubscriptions lists subscriptions.
func (c *Client) ListSubscriptions(ctx context.Context, p SubscriptionListParams) (*Page[Subscription], error) {
	q := url.Values{}
	if err := p.encode(q); err != nil {
		return nil, fmt.Errorf("gocardless: list subscriptions: %w", err)
	}
	set(q, "customer", p.Customer)
	set(q, "mandate", p.Mandate)
	set(q, "status", strings.Join(p.Status, ","))
	page, _, err := list[Subscription](ctx, c, subscriptions, q)
	return page, err
}

// CancelSubscription stops a subscription creating payments.
func (c *Client) CancelSubscription(ctx context.Context, key, id string, p ActionParams) (*Subscription, error) {
	return action(ctx, c, subscriptions, id, "cancel", key, p,
		func(s *Subscription) bool { return s.Status == "cancelled" })
}

// Payout is money GoCardless paid to the creditor: the net of the payout
// items (payments in, fees, refunds, charge-backs out) of one creditor in
// one currency. Fields GoCardless sends as null are zero here: ArrivalDate
// and TaxCurrency are empty, FX is nil (gocardless-pro-java Payout.java).
type Payout struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	// Amount is in minor units: the sum of the payout's items, rounded to
	// the minor unit (see [CheckPayoutItems]).
	Amount int64 `json:"amount"`
	// DeductedFees are the fees taken from Amount, in minor units and
	// inclusive of tax: (GoCardless fees + app fees + surcharge fees) -
	// refunded fees. Negative when a payout refunds more fees than it
	// takes (late failures, charge-backs); 0 when fees are invoiced.
	DeductedFees int64  `json:"deducted_fees"`
	Currency     string `json:"currency"`
	// ArrivalDate (YYYY-MM-DD) is when the money is due in the creditor's
	// bank: empty until the payout is paid.
	ArrivalDate string `json:"arrival_date"`
	// Reference appears on the creditor's bank statement.
	Reference string `json:"reference"`
	// Status is pending, paid or bounced.
	Status string `json:"status"`
	// PayoutType is merchant or partner.
	PayoutType string `json:"payout_type"`
	// TaxCurrency is the currency tax on fees is paid in (GBP for British,
	// EUR for French creditors); empty where no tax applies.
	TaxCurrency string `json:"tax_currency"`
	// FX describes the exchange of a payout paid in another currency: nil
	// (or with an empty FXCurrency) when there is none.
	FX       *PayoutFX         `json:"fx"`
	Metadata map[string]string `json:"metadata"`
	Links    PayoutLinks       `json:"links"`
}

// PayoutFX describes a payout's foreign exchange. Rates are decimal
// strings with up to 10 places, kept as sent: never floats.
type PayoutFX struct {
	// FXCurrency is the currency the payout is paid in after exchange.
	FXCurrency string `json:"fx_currency"`
	// FXAmount is the amount paid in FXCurrency, in its minor units: nil
	// until the payout is paid.
	FXAmount *int64 `json:"fx_amount"`
	// ExchangeRate is the rate used: empty until the payout is paid.
	ExchangeRate string `json:"exchange_rate"`
	// EstimatedExchangeRate is the prevailing rate before the payout is
	// paid: empty after.
	EstimatedExchangeRate string `json:"estimated_exchange_rate"`
}

// PayoutLinks are a payout's links.
type PayoutLinks struct {
	// Creditor receives the payout: the owner of CreditorBankAccount.
	Creditor            string `json:"creditor"`
	CreditorBankAccount string `json:"creditor_bank_account"`
}

// PayoutListParams filter ListPayouts.
type PayoutListParams struct {
	ListParams
	Creditor            string
	CreditorBankAccount string
	Currency            string
	Status              string
	PayoutType          string
	Reference           string
}

// ListPayouts lists payouts.
func (c *Client) ListPayouts(ctx context.Context, p PayoutListParams) (*Page[Payout], error) {
	q := url.Values{}
	if err := p.encode(q); err != nil {
		return nil, fmt.Errorf("gocardless: list payouts: %w", err)
	}
	set(q, "creditor", p.Creditor)
	set(q, "creditor_bank_account", p.CreditorBankAccount)
	set(q, "currency", p.Currency)
	set(q, "status", p.Status)
	set(q, "payout_type", p.PayoutType)
	set(q, "reference", p.Reference)
	page, _, err := list[Payout](ctx, c, payouts, q)
	return page, err
}

// GetPayout fetches a payout.
func (c *Client) GetPayout(ctx context.Context, id string) (*Payout, error) {
	return get[Payout](ctx, c, payouts, id)
}
