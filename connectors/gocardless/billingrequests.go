package gocardless

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Billing requests are how an ordinary GoCardless account sets up a
// mandate: creating customer bank accounts and mandates directly needs
// GoCardless's approval for custom payment pages
// (Creditor.CustomPaymentPagesEnabled). The integrator creates a billing
// request with a mandate request and a billing request flow, and sends the
// payer the flow's AuthorisationURL (or asks GoCardless to email it with
// NotifyBillingRequest); when the payer has completed it GoCardless
// fulfils the request, creating the bank account and the mandate, and
// sends billing_requests "fulfilled" and mandates "created" events
// (developer.gocardless.com, "Billing Requests" guides; the shapes are
// those of gocardless/gocardless-pro-python tests/fixtures/billing_requests.json
// and billing_request_flows.json).

// Billing request statuses.
const (
	BillingRequestPending       = "pending"
	BillingRequestReadyToFulfil = "ready_to_fulfil"
	BillingRequestFulfilling    = "fulfilling"
	BillingRequestFulfilled     = "fulfilled"
	BillingRequestCancelled     = "cancelled"
)

// BillingRequest asks a payer for a mandate.
type BillingRequest struct {
	ID              string                 `json:"id"`
	CreatedAt       time.Time              `json:"created_at"`
	Status          string                 `json:"status"`
	Actions         []BillingRequestAction `json:"actions"`
	FallbackEnabled bool                   `json:"fallback_enabled"`
	MandateRequest  *MandateRequest        `json:"mandate_request"`
	Metadata        map[string]string      `json:"metadata"`
	Links           BillingRequestLinks    `json:"links"`
	Resources       struct {
		Customer            *Customer            `json:"customer"`
		CustomerBankAccount *CustomerBankAccount `json:"customer_bank_account"`
	} `json:"resources"`
}

// BillingRequestAction is a step still to be done (or done) before the
// request can be fulfilled, e.g. collect_customer_details,
// collect_bank_account, confirm_payer_details.
type BillingRequestAction struct {
	Type            string   `json:"type"`
	Required        bool     `json:"required"`
	Status          string   `json:"status"` // pending or completed
	RequiresActions []string `json:"requires_actions"`
}

// BillingRequestLinks are a billing request's links.
// MandateRequestMandate is set once the request is fulfilled.
type BillingRequestLinks struct {
	Creditor              string `json:"creditor"`
	Customer              string `json:"customer"`
	CustomerBankAccount   string `json:"customer_bank_account"`
	MandateRequest        string `json:"mandate_request"`
	MandateRequestMandate string `json:"mandate_request_mandate"`
}

// MandateRequest is the mandate a billing request asks for.
type MandateRequest struct {
	Currency            string            `json:"currency"`
	Scheme              string            `json:"scheme"`
	Verify              string            `json:"verify"`
	Description         string            `json:"description"`
	AuthorisationSource string            `json:"authorisation_source"`
	Metadata            map[string]string `json:"metadata"`
	Links               struct {
		Mandate string `json:"mandate"`
	} `json:"links"`
}

// BillingRequestParams create a billing request for a mandate.
type BillingRequestParams struct {
	MandateRequest MandateRequestParams `json:"mandate_request"`
	Metadata       map[string]string    `json:"metadata,omitempty"`
	Links          struct {
		// Creditor is needed when the account has several.
		Creditor string `json:"creditor,omitempty"`
		// Customer reuses a GoCardless customer; without it GoCardless
		// creates one that the payer fills in.
		Customer string `json:"customer,omitempty"`
		// CustomerBankAccount reuses a bank account GoCardless holds.
		CustomerBankAccount string `json:"customer_bank_account,omitempty"`
	} `json:"links"`
}

// MandateRequestParams describe the mandate asked for: the currency
// chooses the scheme unless Scheme is set.
type MandateRequestParams struct {
	Currency    string `json:"currency"`
	Scheme      string `json:"scheme,omitempty"`
	Description string `json:"description,omitempty"`
	// Verify is minimum, recommended, when_available or always.
	Verify string `json:"verify,omitempty"`
	// AuthorisationSource is ACH's: web, telephone or paper.
	AuthorisationSource string            `json:"authorisation_source,omitempty"`
	Metadata            map[string]string `json:"metadata,omitempty"`
}

// CreateBillingRequest creates a billing request. existed reports that key
// had already created one, which is returned instead.
func (c *Client) CreateBillingRequest(ctx context.Context, key string, p BillingRequestParams) (br *BillingRequest, existed bool, err error) {
	if p.MandateRequest.Currency == "" {
		return nil, false, fmt.Errorf("gocardless: billing request: mandate_request currency is required")
	}
	return create[BillingRequest](ctx, c, billingRequests, key, p)
}

// GetBillingRequest fetches a billing request.
func (c *Client) GetBillingRequest(ctx context.Context, id string) (*BillingRequest, error) {
	return get[BillingRequest](ctx, c, billingRequests, id)
}

// BillingRequestListParams filter ListBillingRequests.
type BillingRequestListParams struct {
	ListParams
	Customer string
	Status   string
}

// ListBillingRequests lists billing requests.
func (c *Client) ListBillingRequests(ctx context.Context, p BillingRequestListParams) (*Page[BillingRequest], error) {
	q := url.Values{}
	if err := p.encode(q); err != nil {
		return nil, fmt.Errorf("gocardless: list billing requests: %w", err)
	}
	set(q, "customer", p.Customer)
	set(q, "status", p.Status)
	page, _, err := list[BillingRequest](ctx, c, billingRequests, q)
	return page, err
}

// NotifyParams are the data of the notify action.
type NotifyParams struct {
	// NotificationType "Currently, can only be email" (the default here).
	NotificationType string `json:"notification_type"`
	RedirectURI      string `json:"redirect_uri,omitempty"`
}

// NotifyBillingRequest asks GoCardless to email the payer a link to
// authorise the request. GoCardless's generated docs say the endpoint "is
// currently supported only for Pay by Bank Billing Requests", so for a
// mandate-only request expect a refusal (an invalid_state or
// validation_failed *APIError) and send the flow's authorisation URL some
// other way. The action is not replayed by GoCardless; an answer lost in
// transit may mean the email went, which at worst sends it twice.
func (c *Client) NotifyBillingRequest(ctx context.Context, key, id string, p NotifyParams) (*BillingRequest, error) {
	if p.NotificationType == "" {
		p.NotificationType = "email"
	}
	return action(ctx, c, billingRequests, id, "notify", key, p,
		func(b *BillingRequest) bool {
			return b.Status == BillingRequestPending || b.Status == BillingRequestReadyToFulfil
		})
}

// FulfilBillingRequest fulfils a ready_to_fulfil request, creating its
// resources. Flows fulfil by themselves (auto_fulfil), so integrators
// rarely need it.
func (c *Client) FulfilBillingRequest(ctx context.Context, key, id string, p ActionParams) (*BillingRequest, error) {
	return action(ctx, c, billingRequests, id, "fulfil", key, p,
		func(b *BillingRequest) bool {
			return b.Status == BillingRequestFulfilled || b.Status == BillingRequestFulfilling
		})
}

// CancelBillingRequest cancels a request; its flows stop working.
func (c *Client) CancelBillingRequest(ctx context.Context, key, id string, p ActionParams) (*BillingRequest, error) {
	return action(ctx, c, billingRequests, id, "cancel", key, p,
		func(b *BillingRequest) bool { return b.Status == BillingRequestCancelled })
}

// BillingRequestFlow is the hosted page where the payer completes a
// billing request. It lasts 7 days (ExpiresAt); afterwards create another
// for the same request.
type BillingRequestFlow struct {
	ID                  string    `json:"id"`
	CreatedAt           time.Time `json:"created_at"`
	AuthorisationURL    string    `json:"authorisation_url"`
	ExpiresAt           time.Time `json:"expires_at"`
	AutoFulfil          bool      `json:"auto_fulfil"`
	RedirectURI         string    `json:"redirect_uri"`
	ExitURI             string    `json:"exit_uri"`
	Language            string    `json:"language"`
	LockBankAccount     bool      `json:"lock_bank_account"`
	LockCurrency        bool      `json:"lock_currency"`
	LockCustomerDetails bool      `json:"lock_customer_details"`
	Links               struct {
		BillingRequest string `json:"billing_request"`
	} `json:"links"`
}

// BillingRequestFlowParams create a flow. The prefilled details are
// shown to the payer, who can change them.
type BillingRequestFlowParams struct {
	RedirectURI          string             `json:"redirect_uri,omitempty"`
	ExitURI              string             `json:"exit_uri,omitempty"`
	Language             string             `json:"language,omitempty"`
	LockCurrency         bool               `json:"lock_currency,omitempty"`
	PrefilledCustomer    *PrefilledCustomer `json:"prefilled_customer,omitempty"`
	PrefilledBankAccount *struct {
		AccountType string `json:"account_type,omitempty"`
	} `json:"prefilled_bank_account,omitempty"`
	Links struct {
		BillingRequest string `json:"billing_request"`
	} `json:"links"`
}

// PrefilledCustomer is what the integrator already knows of the payer.
type PrefilledCustomer struct {
	Email                 string `json:"email,omitempty"`
	GivenName             string `json:"given_name,omitempty"`
	FamilyName            string `json:"family_name,omitempty"`
	CompanyName           string `json:"company_name,omitempty"`
	AddressLine1          string `json:"address_line1,omitempty"`
	AddressLine2          string `json:"address_line2,omitempty"`
	AddressLine3          string `json:"address_line3,omitempty"`
	City                  string `json:"city,omitempty"`
	Region                string `json:"region,omitempty"`
	PostalCode            string `json:"postal_code,omitempty"`
	CountryCode           string `json:"country_code,omitempty"`
	SwedishIdentityNumber string `json:"swedish_identity_number,omitempty"`
	DanishIdentityNumber  string `json:"danish_identity_number,omitempty"`
}

// CreateBillingRequestFlow creates a flow for a billing request. Unlike
// other creates, the endpoint is not idempotent (gocardless-pro-java
// BillingRequestFlowService.java builds it as a plain PostRequest, not an
// IdempotentPostRequest) and flows cannot be fetched. It is retried like
// the other calls all the same, since the worst outcome of a repeat, a
// second flow for the same request, is harmless: either link works until
// it expires, and the billing request is fulfilled once.
func (c *Client) CreateBillingRequestFlow(ctx context.Context, p BillingRequestFlowParams) (*BillingRequestFlow, error) {
	if p.Links.BillingRequest == "" {
		return nil, fmt.Errorf("gocardless: billing request flow: links.billing_request is required")
	}
	b, err := envelope(billingRequestFlows, p)
	if err != nil {
		return nil, err
	}
	r := billingRequestFlows.path("")
	body, err := c.do(ctx, request{method: http.MethodPost, path: r, route: r, body: b, repeatable: true})
	if err != nil {
		return nil, err
	}
	f := new(BillingRequestFlow)
	if err := unwrap(billingRequestFlows, body, f); err != nil {
		return nil, err
	}
	return f, nil
}
