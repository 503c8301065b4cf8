package gcsim

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Billing requests are how an ordinary GoCardless account sets a mandate
// up: the integrator creates a billing request with a mandate_request and
// a billing request flow, the payer opens the flow's authorisation_url,
// gives their details and bank account, and GoCardless fulfils the
// request, creating the customer bank account and the mandate
// (developer.gocardless.com, "Billing Requests: Direct Debit mandates";
// gocardless-pro-java BillingRequestService.java,
// BillingRequestFlowService.java). Shapes follow
// gocardless/gocardless-pro-python tests/fixtures/billing_requests.json
// and billing_request_flows.json; statuses and the flow's 7-day life
// follow gocardless/gocardless-nodejs src/types/Types.ts
// (BillingRequestStatus, BillingRequestFlow.expires_at: "Each flow
// currently lasts for 7 days"). The simulator models mandate requests
// only; payment, subscription and instalment requests are refused as
// unsupported rather than half-simulated.

// Billing request statuses (Types.ts BillingRequestStatus).
const (
	brPending       = "pending"
	brReadyToFulfil = "ready_to_fulfil"
	brFulfilling    = "fulfilling"
	brFulfilled     = "fulfilled"
	brCancelled     = "cancelled"
)

// Billing request action types and statuses (Types.ts
// BillingRequestActionType, BillingRequestActionStatus).
const (
	actCollectCustomerDetails = "collect_customer_details"
	actCollectBankAccount     = "collect_bank_account"
	actConfirmPayerDetails    = "confirm_payer_details"
	actPending                = "pending"
	actCompleted              = "completed"
)

// flowLifetime is how long a billing request flow can be used
// (Types.ts: "Each flow currently lasts for 7 days").
const flowLifetime = 7 * 24 * time.Hour

// authorisationURLBase is where the simulator says a flow is served. The
// real URL is GoCardless's hosted payment page; nothing should parse it.
const authorisationURLBase = "https://pay-sandbox.gocardless.com/billing/static/flow?id="

// BillingRequest is a request for a payer to set up a mandate.
type BillingRequest struct {
	ID               string                  `json:"id"`
	CreatedAt        string                  `json:"created_at"`
	Status           string                  `json:"status"`
	Actions          []BillingRequestAction  `json:"actions"`
	FallbackEnabled  bool                    `json:"fallback_enabled"`
	FallbackOccurred bool                    `json:"fallback_occurred"`
	Links            BillingRequestLinks     `json:"links"`
	MandateRequest   *MandateRequest         `json:"mandate_request"`
	Metadata         map[string]string       `json:"metadata"`
	Resources        BillingRequestResources `json:"resources"`

	seq      uint64
	created  time.Time
	notified []time.Time // notify actions accepted
}

// BillingRequestAction is a step the payer (or integrator) must complete
// before the request can be fulfilled.
type BillingRequestAction struct {
	Type             string   `json:"type"`
	Required         bool     `json:"required"`
	CompletesActions []string `json:"completes_actions"`
	RequiresActions  []string `json:"requires_actions"`
	Status           string   `json:"status"`
}

// BillingRequestLinks are a billing request's links; unset ones are left
// out, as GoCardless does with links.
type BillingRequestLinks struct {
	Creditor              string `json:"creditor,omitempty"`
	Customer              string `json:"customer,omitempty"`
	CustomerBankAccount   string `json:"customer_bank_account,omitempty"`
	CustomerBillingDetail string `json:"customer_billing_detail,omitempty"`
	MandateRequest        string `json:"mandate_request,omitempty"`
	MandateRequestMandate string `json:"mandate_request_mandate,omitempty"`
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
		Mandate string `json:"mandate,omitempty"`
	} `json:"links"`
}

// BillingRequestResources are the payer's resources as the request holds
// them.
type BillingRequestResources struct {
	Customer              *BillingRequestCustomer `json:"customer"`
	CustomerBankAccount   *CustomerBankAccount    `json:"customer_bank_account"`
	CustomerBillingDetail *BillingDetail          `json:"customer_billing_detail"`
}

// BillingRequestCustomer is the customer as a billing request shows it.
type BillingRequestCustomer struct {
	ID          string            `json:"id"`
	CreatedAt   string            `json:"created_at"`
	Email       string            `json:"email"`
	GivenName   string            `json:"given_name"`
	FamilyName  string            `json:"family_name"`
	CompanyName string            `json:"company_name"`
	Language    string            `json:"language"`
	PhoneNumber string            `json:"phone_number"`
	Metadata    map[string]string `json:"metadata"`
}

// BillingDetail is the customer's billing address as a billing request
// shows it.
type BillingDetail struct {
	ID                    string   `json:"id"`
	CreatedAt             string   `json:"created_at"`
	AddressLine1          string   `json:"address_line1"`
	AddressLine2          string   `json:"address_line2"`
	AddressLine3          string   `json:"address_line3"`
	City                  string   `json:"city"`
	Region                string   `json:"region"`
	PostalCode            string   `json:"postal_code"`
	CountryCode           string   `json:"country_code"`
	SwedishIdentityNumber string   `json:"swedish_identity_number"`
	DanishIdentityNumber  string   `json:"danish_identity_number"`
	IPAddress             string   `json:"ip_address"`
	Schemes               []string `json:"schemes"`
}

// BillingRequestFlow is the hosted page a payer completes a billing
// request on.
type BillingRequestFlow struct {
	ID                        string             `json:"id"`
	CreatedAt                 string             `json:"created_at"`
	AuthorisationURL          string             `json:"authorisation_url"`
	AutoFulfil                bool               `json:"auto_fulfil"`
	ExpiresAt                 string             `json:"expires_at"`
	ExitURI                   string             `json:"exit_uri"`
	RedirectURI               string             `json:"redirect_uri"`
	Language                  string             `json:"language"`
	LockBankAccount           bool               `json:"lock_bank_account"`
	LockCurrency              bool               `json:"lock_currency"`
	LockCustomerDetails       bool               `json:"lock_customer_details"`
	CustomerDetailsCaptured   bool               `json:"customer_details_captured"`
	ShowRedirectButtons       bool               `json:"show_redirect_buttons"`
	ShowSuccessRedirectButton bool               `json:"show_success_redirect_button"`
	SkipSuccessScreen         bool               `json:"skip_success_screen"`
	PrefilledCustomer         *PrefilledCustomer `json:"prefilled_customer"`
	PrefilledBankAccount      *PrefilledAccount  `json:"prefilled_bank_account"`
	SessionToken              string             `json:"session_token"`
	Links                     struct {
		BillingRequest string `json:"billing_request"`
	} `json:"links"`

	seq     uint64
	created time.Time
	expires time.Time
	state   string // open, completed, exited
}

// PrefilledCustomer is what the integrator already knows of the payer;
// GoCardless stores it unvalidated and the payer may change it.
type PrefilledCustomer struct {
	AddressLine1          string `json:"address_line1,omitempty"`
	AddressLine2          string `json:"address_line2,omitempty"`
	AddressLine3          string `json:"address_line3,omitempty"`
	City                  string `json:"city,omitempty"`
	CompanyName           string `json:"company_name,omitempty"`
	CountryCode           string `json:"country_code,omitempty"`
	DanishIdentityNumber  string `json:"danish_identity_number,omitempty"`
	Email                 string `json:"email,omitempty"`
	FamilyName            string `json:"family_name,omitempty"`
	GivenName             string `json:"given_name,omitempty"`
	PostalCode            string `json:"postal_code,omitempty"`
	Region                string `json:"region,omitempty"`
	SwedishIdentityNumber string `json:"swedish_identity_number,omitempty"`
}

// PrefilledAccount is the only bank account detail a flow can be
// prefilled with (billing_request_flows.json: prefilled_bank_account
// holds account_type).
type PrefilledAccount struct {
	AccountType string `json:"account_type,omitempty"`
}

// MarshalJSON renders a billing request with every attribute
// (billing_requests.json); the request kinds the simulator does not
// model are null.
func (b BillingRequest) MarshalJSON() ([]byte, error) {
	type plain BillingRequest
	return withNulls(plain(b), "instalment_schedule_request", "payment_request", "subscription_request",
		"payment_context_code", "payment_purpose_code", "purpose_code")
}

// MarshalJSON renders a mandate request with every attribute.
func (m MandateRequest) MarshalJSON() ([]byte, error) {
	type plain MandateRequest
	return withNulls(plain(m), "description", "authorisation_source", "constraints", "consent_type",
		"funds_settlement", "payer_requested_dual_signature", "sweeping")
}

// MarshalJSON renders the customer with every attribute.
func (c BillingRequestCustomer) MarshalJSON() ([]byte, error) {
	type plain BillingRequestCustomer
	return withNulls(plain(c), "email", "given_name", "family_name", "company_name", "language", "phone_number")
}

// MarshalJSON renders the billing detail with every attribute.
func (d BillingDetail) MarshalJSON() ([]byte, error) {
	type plain BillingDetail
	return withNulls(plain(d), "address_line1", "address_line2", "address_line3", "city", "region",
		"postal_code", "country_code", "swedish_identity_number", "danish_identity_number", "ip_address")
}

// MarshalJSON renders a flow with every attribute (billing_request_flows.json).
func (f BillingRequestFlow) MarshalJSON() ([]byte, error) {
	type plain BillingRequestFlow
	return withNulls(plain(f), "exit_uri", "redirect_uri", "language", "session_token")
}

func (b BillingRequest) clone() BillingRequest {
	b.Actions = slices.Clone(b.Actions)
	b.Metadata = maps.Clone(b.Metadata)
	if b.MandateRequest != nil {
		m := *b.MandateRequest
		m.Metadata = maps.Clone(m.Metadata)
		b.MandateRequest = &m
	}
	b.notified = slices.Clone(b.notified)
	return b
}

func (f BillingRequestFlow) clone() BillingRequestFlow {
	if f.PrefilledCustomer != nil {
		c := *f.PrefilledCustomer
		f.PrefilledCustomer = &c
	}
	if f.PrefilledBankAccount != nil {
		a := *f.PrefilledBankAccount
		f.PrefilledBankAccount = &a
	}
	return f
}

type billingRequestParams struct {
	MandateRequest *struct {
		Currency            *string         `json:"currency"`
		Scheme              *string         `json:"scheme"`
		Verify              *string         `json:"verify"`
		Description         *string         `json:"description"`
		AuthorisationSource *string         `json:"authorisation_source"`
		Metadata            json.RawMessage `json:"metadata"`
	} `json:"mandate_request"`
	PaymentRequest            json.RawMessage `json:"payment_request"`
	SubscriptionRequest       json.RawMessage `json:"subscription_request"`
	InstalmentScheduleRequest json.RawMessage `json:"instalment_schedule_request"`
	FallbackEnabled           *bool           `json:"fallback_enabled"`
	Metadata                  json.RawMessage `json:"metadata"`
	Links                     struct {
		Creditor            *string `json:"creditor"`
		Customer            *string `json:"customer"`
		CustomerBankAccount *string `json:"customer_bank_account"`
	} `json:"links"`
}

// mandateVerify are the values of mandate_request.verify (Types.ts
// BillingRequestMandateRequestVerify).
var mandateVerify = []string{"minimum", "recommended", "when_available", "always"}

func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

func (s *Sim) createBillingRequest(r *request) (int, any, *apiError) {
	if aerr := s.idempotencyConflict(r, "billing_requests"); aerr != nil {
		return 0, nil, aerr
	}
	var p billingRequestParams
	if aerr := decodeEnvelope(r, "billing_requests", &p); aerr != nil {
		return 0, nil, aerr
	}
	fe := fieldErrors{resource: "billing_requests"}
	metadata := parseMetadata(p.Metadata, &fe)
	for field, raw := range map[string]json.RawMessage{"payment_request": p.PaymentRequest,
		"subscription_request": p.SubscriptionRequest, "instalment_schedule_request": p.InstalmentScheduleRequest} {
		if present(raw) {
			fe.add(field, "is not supported by the simulator (mandate requests only)")
		}
	}
	br := &BillingRequest{Status: brPending, FallbackEnabled: p.FallbackEnabled != nil && *p.FallbackEnabled}
	var sc *scheme
	if p.MandateRequest == nil {
		fe.add("mandate_request", "is required (the simulator models mandate requests only)")
	} else {
		mr := p.MandateRequest
		mfe := fieldErrors{resource: "billing_requests/mandate_request"}
		currency := strings.ToUpper(str(mr.Currency))
		switch {
		case currency == "":
			mfe.add("currency", "is required")
		case !supportedCurrency(currency):
			mfe.add("currency", "must be one of AUD, CAD, DKK, EUR, GBP, NZD, SEK, USD")
		default:
			sc, _ = schemeForCurrency(currency)
		}
		if !blank(mr.Scheme) {
			want, ok := schemeByName(*mr.Scheme)
			switch {
			case !ok:
				mfe.add("scheme", "is not a supported scheme")
			case sc != nil && want != sc:
				mfe.add("scheme", "is not compatible with the currency "+currency)
			}
		}
		verify := "recommended"
		if !blank(mr.Verify) {
			verify = *mr.Verify
			if !slices.Contains(mandateVerify, verify) {
				mfe.add("verify", "must be one of "+strings.Join(mandateVerify, ", "))
			}
		}
		source := str(mr.AuthorisationSource)
		if source != "" && !slices.Contains(authorisationSources, source) {
			mfe.add("authorisation_source", "must be one of web, telephone, paper")
		}
		mmeta := parseMetadata(mr.Metadata, &mfe)
		for _, it := range mfe.items {
			it.Field = "mandate_request[" + it.Field + "]"
			fe.items = append(fe.items, it)
		}
		if sc != nil {
			br.MandateRequest = &MandateRequest{Currency: currency, Scheme: sc.name, Verify: verify,
				Description: str(mr.Description), AuthorisationSource: source, Metadata: nonNil(mmeta)}
		}
	}
	var creditor *Creditor
	switch {
	case !blank(p.Links.Creditor):
		c, ok := s.creditors.get(*p.Links.Creditor)
		if !ok && fe.empty() {
			return 0, nil, linkNotFound("billing_requests", "links[creditor]")
		}
		creditor = c
	case len(s.creditors.list) == 1:
		creditor = s.creditors.list[0]
	default:
		fe.add("links[creditor]", "is required when the account has more than one creditor")
	}
	sortItems(&fe)
	if aerr := fe.err(); aerr != nil {
		return 0, nil, aerr
	}
	var customer *Customer
	if !blank(p.Links.Customer) {
		c, ok := s.customers.get(*p.Links.Customer)
		if !ok {
			return 0, nil, linkNotFound("billing_requests", "links[customer]")
		}
		customer = c
	}
	var account *CustomerBankAccount
	if !blank(p.Links.CustomerBankAccount) {
		a, ok := s.accounts.get(*p.Links.CustomerBankAccount)
		if !ok {
			return 0, nil, linkNotFound("billing_requests", "links[customer_bank_account]")
		}
		if customer != nil && a.Links.Customer != customer.ID {
			fe.add("links[customer_bank_account]", "must belong to the linked customer")
			return 0, nil, fe.err()
		}
		if a.Currency != sc.currency {
			fe.add("links[customer_bank_account]", "must be a "+sc.currency+" account for this mandate request")
			return 0, nil, fe.err()
		}
		account = a
		if customer == nil {
			customer, _ = s.customers.get(a.Links.Customer)
		}
	}
	if customer == nil {
		// GoCardless creates the customer the request is for when none is
		// linked; the payer fills it in on the flow.
		customer = s.newCustomer(r.now)
	}
	br.ID = s.newID(prefixBillingRequest)
	br.CreatedAt = formatTime(r.now)
	br.created = r.now
	br.seq = s.nextSeq()
	br.Metadata = nonNil(metadata)
	br.Links = BillingRequestLinks{Creditor: creditor.ID, Customer: customer.ID,
		CustomerBillingDetail: customer.ID, MandateRequest: s.newID(prefixMandateRequest)}
	if account != nil {
		br.Links.CustomerBankAccount = account.ID
	}
	br.Actions = []BillingRequestAction{
		{Type: actCollectCustomerDetails, Required: true, CompletesActions: []string{}, RequiresActions: []string{}, Status: actPending},
		{Type: actCollectBankAccount, Required: true, CompletesActions: []string{}, RequiresActions: []string{}, Status: actPending},
		{Type: actConfirmPayerDetails, Required: true, CompletesActions: []string{},
			RequiresActions: []string{actCollectCustomerDetails, actCollectBankAccount}, Status: actPending},
	}
	if account != nil {
		br.Actions[1].Status = actCompleted
	}
	s.billingRequests.add(br.ID, br)
	s.rememberKey(r, "billing_requests", br.ID)
	s.emit(r.now, "billing_requests", "created", s.brLinks(br, ""),
		EventDetails{Origin: originAPI, Cause: "billing_request_created", Description: "This billing request has been created."},
		nil, br.Metadata)
	return http.StatusCreated, envelope("billing_requests", s.viewBillingRequest(br)), nil
}

// newCustomer records a customer with no details yet.
func (s *Sim) newCustomer(now time.Time) *Customer {
	c := &Customer{ID: s.newID(prefixCustomer), CreatedAt: formatTime(now), Language: "en",
		Metadata: map[string]string{}, seq: s.nextSeq(), created: now}
	s.customers.add(c.ID, c)
	return c
}

// brLinks are the links of a billing request's events
// (developer.gocardless.com/billing-requests/responding-to-billing-request-events:
// billing_request, billing_request_flow, customer, customer_bank_account,
// mandate_request_mandate).
func (s *Sim) brLinks(br *BillingRequest, flow string) map[string]string {
	l := map[string]string{"billing_request": br.ID, "customer": br.Links.Customer}
	if flow != "" {
		l["billing_request_flow"] = flow
	}
	if br.Links.CustomerBankAccount != "" {
		l["customer_bank_account"] = br.Links.CustomerBankAccount
	}
	if br.Links.MandateRequestMandate != "" {
		l["mandate_request_mandate"] = br.Links.MandateRequestMandate
	}
	return l
}

// viewBillingRequest renders a billing request with its resources as they
// are now.
func (s *Sim) viewBillingRequest(br *BillingRequest) BillingRequest {
	v := br.clone()
	if c, ok := s.customers.get(br.Links.Customer); ok {
		v.Resources.Customer = &BillingRequestCustomer{ID: c.ID, CreatedAt: c.CreatedAt, Email: c.Email,
			GivenName: c.GivenName, FamilyName: c.FamilyName, CompanyName: c.CompanyName, Language: c.Language,
			PhoneNumber: c.PhoneNumber, Metadata: maps.Clone(nonNil(c.Metadata))}
		d := &BillingDetail{ID: c.ID, CreatedAt: c.CreatedAt, AddressLine1: c.AddressLine1,
			AddressLine2: c.AddressLine2, AddressLine3: c.AddressLine3, City: c.City, Region: c.Region,
			PostalCode: c.PostalCode, CountryCode: c.CountryCode, SwedishIdentityNumber: c.SwedishIdentityNumber,
			DanishIdentityNumber: c.DanishIdentityNumber, Schemes: []string{}}
		if br.MandateRequest != nil {
			d.Schemes = []string{br.MandateRequest.Scheme}
		}
		v.Resources.CustomerBillingDetail = d
	}
	if a, ok := s.accounts.get(br.Links.CustomerBankAccount); ok {
		ac := a.clone()
		v.Resources.CustomerBankAccount = &ac
	}
	return v
}

func (s *Sim) getBillingRequest(r *request) (int, any, *apiError) {
	br, ok := s.billingRequests.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	return 200, envelope("billing_requests", s.viewBillingRequest(br)), nil
}

// listBillingRequests lists billing requests, filtered by customer and
// status (gocardless-pro-java BillingRequestService.java, list).
func (s *Sim) listBillingRequests(r *request) (int, any, *apiError) {
	customer, status := eq(r.query, "customer"), eq(r.query, "status")
	return list("billing_requests", s.billingRequests.list, r.query,
		func(id string) (uint64, bool) { return seqOf(&s.billingRequests, id) },
		func(b *BillingRequest) time.Time { return b.created },
		func(b *BillingRequest) bool { return customer(b.Links.Customer) && status(b.Status) },
		func(b *BillingRequest) BillingRequest { return s.viewBillingRequest(b) })
}

// brActionData is the {"data": {...}} of a billing request action.
type brActionData struct {
	Metadata         json.RawMessage `json:"metadata"`
	NotificationType *string         `json:"notification_type"`
	RedirectURI      *string         `json:"redirect_uri"`
}

func decodeBRAction(r *request) (brActionData, *apiError) {
	var d brActionData
	raw, aerr := envelopeMember(r.body, "data", false)
	if aerr != nil || raw == nil {
		return d, aerr
	}
	return d, decodeInto(raw, "data", &d)
}

// notifyBillingRequest asks GoCardless to email the payer. The endpoint
// takes notification_type, "Currently, can only be email", and
// redirect_uri (BillingRequestService.java, BillingRequestNotifyRequest).
// The same file says "This endpoint is currently supported only for Pay
// by Bank Billing Requests", i.e. not for a mandate-only request, while
// GoCardless's guides describe emailing mandate requests too: the
// simulator refuses a mandate-only request unless
// Options.NotifyMandateRequests is set, so integrations are tested
// against both answers. The refusal's reason is the simulator's own
// (GoCardless publishes none).
func (s *Sim) notifyBillingRequest(r *request) (int, any, *apiError) {
	br, ok := s.billingRequests.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	d, aerr := decodeBRAction(r)
	if aerr != nil {
		return 0, nil, aerr
	}
	fe := fieldErrors{resource: "data"}
	switch nt := str(d.NotificationType); {
	case nt == "":
		fe.add("notification_type", "is required")
	case nt != "email":
		fe.add("notification_type", "must be email")
	}
	if aerr := fe.err(); aerr != nil {
		return 0, nil, aerr
	}
	if br.Status != brPending && br.Status != brReadyToFulfil {
		return 0, nil, stateError("billing_request_not_pending", "The billing request is "+br.Status+" and the payer cannot be notified")
	}
	if !s.notifyMandates {
		return 0, nil, stateError("notification_not_supported",
			"Notifying the payer is only supported for Pay by Bank billing requests")
	}
	if c, ok := s.customers.get(br.Links.Customer); !ok || c.Email == "" {
		fe.add("customer[email]", "is required to notify the payer by email")
		return 0, nil, fe.err()
	}
	br.notified = append(br.notified, r.now)
	return 200, envelope("billing_requests", s.viewBillingRequest(br)), nil
}

// fulfilBillingRequest fulfils a request whose actions are all complete
// (developer.gocardless.com/billing-requests/billing-request-actions: "Once
// all required actions have been completed, the Billing Request will
// become ready_to_fulfil, and an integrator can use the fulfil action").
// The state error's reason is the simulator's own.
func (s *Sim) fulfilBillingRequest(r *request) (int, any, *apiError) {
	br, metadata, aerr := s.billingRequestAction(r)
	if aerr != nil {
		return 0, nil, aerr
	}
	if br.Status != brReadyToFulfil {
		return 0, nil, stateError("billing_request_not_ready_to_fulfil",
			"The billing request is "+br.Status+"; only a ready_to_fulfil billing request can be fulfilled")
	}
	s.fulfil(br, r.now, originAPI, "", metadata)
	return 200, envelope("billing_requests", s.viewBillingRequest(br)), nil
}

// billingRequestAction finds the billing request an action names and
// reads the action's metadata, the part fulfil and cancel share.
func (s *Sim) billingRequestAction(r *request) (*BillingRequest, map[string]string, *apiError) {
	br, ok := s.billingRequests.get(r.id())
	if !ok {
		return nil, nil, notFound()
	}
	d, aerr := decodeBRAction(r)
	if aerr != nil {
		return nil, nil, aerr
	}
	fe := fieldErrors{resource: "data"}
	metadata := parseMetadata(d.Metadata, &fe)
	if aerr := fe.err(); aerr != nil {
		return nil, nil, aerr
	}
	return br, metadata, nil
}

// cancelBillingRequest "Immediately cancels a billing request, causing
// all billing request flows to expire" (BillingRequestService.java). A
// fulfilled or cancelled request cannot be cancelled; the reason is the
// simulator's own.
func (s *Sim) cancelBillingRequest(r *request) (int, any, *apiError) {
	br, metadata, aerr := s.billingRequestAction(r)
	if aerr != nil {
		return 0, nil, aerr
	}
	if br.Status != brPending && br.Status != brReadyToFulfil {
		return 0, nil, stateError("cancellation_failed", "The billing request is "+br.Status+" and can no longer be cancelled")
	}
	br.Status = brCancelled
	for _, f := range s.flows.list {
		if f.Links.BillingRequest == br.ID && f.expires.After(r.now) {
			f.expires = r.now
			f.ExpiresAt = formatTime(r.now)
		}
	}
	s.emit(r.now, "billing_requests", "cancelled", s.brLinks(br, ""),
		EventDetails{Origin: originAPI, Cause: "billing_request_cancelled",
			Description: "This billing request has been cancelled, none of the resources have been created."},
		metadata, br.Metadata)
	return 200, envelope("billing_requests", s.viewBillingRequest(br)), nil
}

type flowParams struct {
	RedirectURI               *string            `json:"redirect_uri"`
	ExitURI                   *string            `json:"exit_uri"`
	Language                  *string            `json:"language"`
	LockBankAccount           *bool              `json:"lock_bank_account"`
	LockCurrency              *bool              `json:"lock_currency"`
	LockCustomerDetails       *bool              `json:"lock_customer_details"`
	CustomerDetailsCaptured   *bool              `json:"customer_details_captured"`
	ShowRedirectButtons       *bool              `json:"show_redirect_buttons"`
	ShowSuccessRedirectButton *bool              `json:"show_success_redirect_button"`
	SkipSuccessScreen         *bool              `json:"skip_success_screen"`
	AutoFulfil                *bool              `json:"auto_fulfil"`
	PrefilledCustomer         *PrefilledCustomer `json:"prefilled_customer"`
	PrefilledBankAccount      *PrefilledAccount  `json:"prefilled_bank_account"`
	Links                     struct {
		BillingRequest *string `json:"billing_request"`
	} `json:"links"`
}

// createFlow creates a billing request flow (BillingRequestFlowService.java):
// links.billing_request is required; auto_fulfil "(true by default).
// Disabling the auto_fulfil is not allowed currently"; lock_bank_account
// and lock_customer_details are only allowed once those details have been
// collected (Types.ts BillingRequestFlow); the flow lasts 7 days.
func (s *Sim) createFlow(r *request) (int, any, *apiError) {
	var p flowParams
	if aerr := decodeEnvelope(r, "billing_request_flows", &p); aerr != nil {
		return 0, nil, aerr
	}
	fe := fieldErrors{resource: "billing_request_flows"}
	if blank(p.Links.BillingRequest) {
		fe.add("links[billing_request]", "is required")
	}
	if p.AutoFulfil != nil && !*p.AutoFulfil {
		fe.add("auto_fulfil", "cannot be disabled")
	}
	if p.Language != nil && *p.Language != "" && !validLanguage(*p.Language) {
		fe.add("language", "must be an ISO 639-1 code")
	}
	if pa := p.PrefilledBankAccount; pa != nil && pa.AccountType != "" && pa.AccountType != "checking" && pa.AccountType != "savings" {
		fe.add("prefilled_bank_account[account_type]", "must be checking or savings")
	}
	if pc := p.PrefilledCustomer; pc != nil && pc.Email != "" && !validEmail(pc.Email) {
		fe.add("prefilled_customer[email]", "is not a valid email address")
	}
	if aerr := fe.err(); aerr != nil {
		return 0, nil, aerr
	}
	br, ok := s.billingRequests.get(*p.Links.BillingRequest)
	if !ok {
		return 0, nil, linkNotFound("billing_request_flows", "links[billing_request]")
	}
	if br.Status != brPending && br.Status != brReadyToFulfil {
		return 0, nil, stateError("billing_request_not_pending",
			"The billing request is "+br.Status+"; a flow can only be created for a pending billing request")
	}
	lock := func(v *bool) bool { return v != nil && *v }
	if lock(p.LockBankAccount) && actionStatus(br, actCollectBankAccount) != actCompleted {
		fe.add("lock_bank_account", "can only be set once the bank account has been collected")
	}
	if lock(p.LockCustomerDetails) && actionStatus(br, actCollectCustomerDetails) != actCompleted {
		fe.add("lock_customer_details", "can only be set once the customer details have been collected")
	}
	if aerr := fe.err(); aerr != nil {
		return 0, nil, aerr
	}
	f := &BillingRequestFlow{
		ID: s.newID(prefixFlow), CreatedAt: formatTime(r.now), AutoFulfil: true,
		ExitURI: str(p.ExitURI), RedirectURI: str(p.RedirectURI), Language: str(p.Language),
		LockBankAccount: lock(p.LockBankAccount), LockCurrency: lock(p.LockCurrency),
		LockCustomerDetails: lock(p.LockCustomerDetails), CustomerDetailsCaptured: lock(p.CustomerDetailsCaptured),
		ShowRedirectButtons: lock(p.ShowRedirectButtons), ShowSuccessRedirectButton: lock(p.ShowSuccessRedirectButton),
		SkipSuccessScreen: lock(p.SkipSuccessScreen), PrefilledCustomer: p.PrefilledCustomer,
		PrefilledBankAccount: p.PrefilledBankAccount,
		seq:                  s.nextSeq(), created: r.now, expires: r.now.Add(flowLifetime), state: flowOpen,
	}
	f.AuthorisationURL = authorisationURLBase + f.ID
	f.ExpiresAt = formatTime(f.expires)
	f.Links.BillingRequest = br.ID
	s.flows.add(f.ID, f)
	s.emit(r.now, "billing_requests", "flow_created", s.brLinks(br, f.ID),
		EventDetails{Origin: originAPI, Cause: "billing_request_flow_created",
			Description: "A billing request flow has been created against this billing request."}, nil, br.Metadata)
	s.schedulePayer(br, f, r.now)
	return http.StatusCreated, envelope("billing_request_flows", f.clone()), nil
}

// Flow states, the simulator's own bookkeeping.
const (
	flowOpen      = "open"
	flowCompleted = "completed"
	flowExited    = "exited"
)

func actionStatus(br *BillingRequest, typ string) string {
	for _, a := range br.Actions {
		if a.Type == typ {
			return a.Status
		}
	}
	return ""
}

func setActionStatus(br *BillingRequest, typ, status string) {
	for i := range br.Actions {
		if br.Actions[i].Type == typ {
			br.Actions[i].Status = status
		}
	}
}

// fulfil creates the mandate a ready billing request asks for, as
// GoCardless does on fulfilment, and records the fulfilled event
// (links.mandate_request_mandate names the new mandate).
func (s *Sim) fulfil(br *BillingRequest, at time.Time, origin, flow string, metadata map[string]string) {
	account, _ := s.accounts.get(br.Links.CustomerBankAccount)
	creditor, _ := s.creditors.get(br.Links.Creditor)
	sc, _ := schemeByName(br.MandateRequest.Scheme)
	m := s.newMandate(at, creditor, account, sc, "", br.MandateRequest.AuthorisationSource, br.MandateRequest.Metadata)
	br.Status = brFulfilled
	br.Links.MandateRequestMandate = m.ID
	br.MandateRequest.Links.Mandate = m.ID
	s.emit(at, "mandates", "created", map[string]string{"mandate": m.ID, "billing_request": br.ID},
		EventDetails{Origin: originGoCardless, Cause: "mandate_created",
			Description: "Mandate created by a billing request."}, nil, m.Metadata)
	s.emit(at, "billing_requests", "fulfilled", s.brLinks(br, flow),
		EventDetails{Origin: origin, Cause: "billing_request_fulfilled",
			Description: "This billing request has been fulfilled, and the resources have been created."},
		metadata, br.Metadata)
	s.startMandate(m, at)
}

// Payer is what a simulated payer enters on a flow. Empty customer fields
// keep what the flow was prefilled with (or the customer already has);
// empty bank details get valid ones for the mandate's currency.
type Payer struct {
	Email       string `json:"email,omitempty"`
	GivenName   string `json:"given_name,omitempty"`
	FamilyName  string `json:"family_name,omitempty"`
	CompanyName string `json:"company_name,omitempty"`
	CountryCode string `json:"country_code,omitempty"`
	// AccountHolderName defaults to the company name, or given and
	// family name.
	AccountHolderName string `json:"account_holder_name,omitempty"`
	AccountNumber     string `json:"account_number,omitempty"`
	BranchCode        string `json:"branch_code,omitempty"`
	BankCode          string `json:"bank_code,omitempty"`
	IBAN              string `json:"iban,omitempty"`
	AccountType       string `json:"account_type,omitempty"`
}

// defaultBankDetails are valid bank details a simulated payer uses per
// scheme when given none.
var defaultBankDetails = map[string]Payer{
	"bacs":             {CountryCode: "GB", AccountNumber: "55779911", BranchCode: "200000"},
	"sepa_core":        {IBAN: "DE89370400440532013000"},
	"autogiro":         {CountryCode: "SE", BranchCode: "5491", AccountNumber: "1234567"},
	"betalingsservice": {CountryCode: "DK", BankCode: "0040", AccountNumber: "0440116243"},
	"becs":             {CountryCode: "AU", BranchCode: "082082", AccountNumber: "012345678"},
	"becs_nz":          {CountryCode: "NZ", BankCode: "01", BranchCode: "0902", AccountNumber: "006838900"},
	"pad":              {CountryCode: "CA", BankCode: "001", BranchCode: "12345", AccountNumber: "0123456"},
	"ach":              {CountryCode: "US", BankCode: "026073150", AccountNumber: "2715500356", AccountType: "checking"},
}

// ErrFlow is returned by the payer controls for a flow that cannot be
// acted on.
type ErrFlow struct{ Reason string }

func (e *ErrFlow) Error() string { return "gcsim: billing request flow: " + e.Reason }

// CompleteFlow plays the payer completing flow id: the flow is visited,
// the customer's details and bank account are collected and confirmed,
// and, the flow auto-fulfilling, the billing request is fulfilled: the
// mandate is created (pending_submission, then submitted and active on
// the scheme's schedule). Each step is an event of resource type
// billing_requests, as GoCardless records them. It fails for an unknown,
// expired, completed or exited flow, or a billing request that is no
// longer pending, and when the payer's details are invalid.
func (s *Sim) CompleteFlow(id string, payer Payer) (BillingRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	s.runDue(now)
	f, br, err := s.openFlow(id, now)
	if err != nil {
		return BillingRequest{}, err
	}
	if err := s.completeFlow(f, br, payer, now); err != nil {
		return BillingRequest{}, err
	}
	defer s.kick()
	return s.viewBillingRequest(br), nil
}

// AbandonFlow plays a payer who opens flow id and leaves it
// (flow_visited, then flow_exited). The billing request stays pending and
// a new flow can be created for it.
func (s *Sim) AbandonFlow(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	s.runDue(now)
	f, br, err := s.openFlow(id, now)
	if err != nil {
		return err
	}
	s.abandonFlow(f, br, now)
	defer s.kick()
	return nil
}

// ExpireFlow ends flow id's life now, as if its 7 days had passed; the
// payer can no longer complete it. GoCardless publishes no event for a
// flow expiring, so none is recorded.
func (s *Sim) ExpireFlow(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	f, _, err := s.openFlow(id, now)
	if err != nil {
		return err
	}
	f.expires = now
	f.ExpiresAt = formatTime(now)
	return nil
}

// Flows returns every billing request flow.
func (s *Sim) Flows() []BillingRequestFlow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneAll(s.flows.list, BillingRequestFlow.clone)
}

// BillingRequests returns every billing request.
func (s *Sim) BillingRequests() []BillingRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]BillingRequest, 0, len(s.billingRequests.list))
	for _, br := range s.billingRequests.list {
		out = append(out, s.viewBillingRequest(br))
	}
	return out
}

// Notified reports when the payer of billing request id was emailed
// through the notify action.
func (s *Sim) Notified(id string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if br, ok := s.billingRequests.get(id); ok {
		return slices.Clone(br.notified)
	}
	return nil
}

func (s *Sim) openFlow(id string, now time.Time) (*BillingRequestFlow, *BillingRequest, error) {
	f, ok := s.flows.get(id)
	if !ok {
		return nil, nil, &ErrFlow{"no flow " + id}
	}
	br, _ := s.billingRequests.get(f.Links.BillingRequest)
	switch {
	case f.state != flowOpen:
		return nil, nil, &ErrFlow{"flow " + id + " was " + f.state}
	case !now.Before(f.expires):
		return nil, nil, &ErrFlow{"flow " + id + " expired at " + f.ExpiresAt}
	case br.Status != brPending && br.Status != brReadyToFulfil:
		return nil, nil, &ErrFlow{"billing request " + br.ID + " is " + br.Status}
	}
	return f, br, nil
}

func (s *Sim) abandonFlow(f *BillingRequestFlow, br *BillingRequest, at time.Time) {
	f.state = flowExited
	s.emit(at, "billing_requests", "flow_visited", s.brLinks(br, f.ID),
		EventDetails{Origin: "payer", Cause: "billing_request_flow_visited", Description: "The billing request flow has been visited."},
		nil, br.Metadata)
	s.emit(at, "billing_requests", "flow_exited", s.brLinks(br, f.ID),
		EventDetails{Origin: "payer", Cause: "billing_request_flow_exited", Description: "The billing request flow has been exited by the payer."},
		nil, br.Metadata)
}

func (s *Sim) completeFlow(f *BillingRequestFlow, br *BillingRequest, payer Payer, at time.Time) error {
	customer, _ := s.customers.get(br.Links.Customer)
	// The payer's details: what they type, else what the flow was
	// prefilled with, else what the customer record has.
	pick := func(typed, prefilled, current string) string {
		switch {
		case typed != "":
			return typed
		case prefilled != "":
			return prefilled
		}
		return current
	}
	pre := PrefilledCustomer{}
	if f.PrefilledCustomer != nil {
		pre = *f.PrefilledCustomer
	}
	c := *customer
	c.Email = pick(payer.Email, pre.Email, c.Email)
	c.GivenName = pick(payer.GivenName, pre.GivenName, c.GivenName)
	c.FamilyName = pick(payer.FamilyName, pre.FamilyName, c.FamilyName)
	c.CompanyName = pick(payer.CompanyName, pre.CompanyName, c.CompanyName)
	c.AddressLine1 = pick("", pre.AddressLine1, c.AddressLine1)
	c.City = pick("", pre.City, c.City)
	c.PostalCode = pick("", pre.PostalCode, c.PostalCode)
	c.CountryCode = pick(payer.CountryCode, pre.CountryCode, c.CountryCode)
	c.SwedishIdentityNumber = pick("", pre.SwedishIdentityNumber, c.SwedishIdentityNumber)
	c.DanishIdentityNumber = pick("", pre.DanishIdentityNumber, c.DanishIdentityNumber)
	switch {
	case c.Email == "" || !validEmail(c.Email):
		return &ErrFlow{"the payer needs a valid email"}
	case c.CompanyName == "" && (c.GivenName == "" || c.FamilyName == ""):
		return &ErrFlow{"the payer needs a company name, or given and family names"}
	}
	var account *CustomerBankAccount
	if br.Links.CustomerBankAccount == "" {
		bank := payer
		if bank.IBAN == "" && bank.AccountNumber == "" {
			d := defaultBankDetails[br.MandateRequest.Scheme]
			bank.IBAN, bank.AccountNumber, bank.BranchCode, bank.BankCode = d.IBAN, d.AccountNumber, d.BranchCode, d.BankCode
			if bank.CountryCode == "" || d.IBAN == "" {
				bank.CountryCode = d.CountryCode
			}
			if bank.AccountType == "" {
				bank.AccountType = d.AccountType
			}
		}
		if bank.AccountType == "" && f.PrefilledBankAccount != nil {
			bank.AccountType = f.PrefilledBankAccount.AccountType
		}
		holder := payer.AccountHolderName
		if holder == "" {
			holder = c.CompanyName
		}
		if holder == "" {
			holder = c.GivenName + " " + c.FamilyName
		}
		params := bankAccountParams{AccountHolderName: &holder, AccountNumber: nonEmpty(bank.AccountNumber),
			BranchCode: nonEmpty(bank.BranchCode), BankCode: nonEmpty(bank.BankCode), IBAN: nonEmpty(bank.IBAN),
			CountryCode: nonEmpty(bank.CountryCode), AccountType: nonEmpty(bank.AccountType)}
		ba := &CustomerBankAccount{Enabled: true, AccountHolderName: holder}
		fe := fieldErrors{resource: "customer_bank_accounts"}
		fingerprint := s.checkAccountDetails(&params, ba, &fe)
		if !fe.empty() {
			return &ErrFlow{fmt.Sprintf("the payer's bank details are invalid: %v", fe.items)}
		}
		if ba.Currency != br.MandateRequest.Currency {
			return &ErrFlow{"the payer's bank account is in " + ba.Currency + ", the mandate request in " + br.MandateRequest.Currency}
		}
		// The same account entered again is the account GoCardless
		// already holds for the customer, not a second one.
		if account = s.existingAccount(customer.ID, fingerprint); account == nil {
			ba.ID = s.newID(prefixBankAccount)
			ba.seq = s.nextSeq()
			ba.created = at
			ba.CreatedAt = formatTime(at)
			ba.Links.Customer = customer.ID
			ba.Metadata = map[string]string{}
			ba.fingerprint = fingerprint
			s.accounts.add(ba.ID, ba)
			account = ba
		}
	}
	*customer = c
	f.state = flowCompleted
	links := func() map[string]string { return s.brLinks(br, f.ID) }
	s.emit(at, "billing_requests", "flow_visited", links(),
		EventDetails{Origin: "payer", Cause: "billing_request_flow_visited", Description: "The billing request flow has been visited."},
		nil, br.Metadata)
	setActionStatus(br, actCollectCustomerDetails, actCompleted)
	s.emit(at, "billing_requests", "collect_customer_details", links(),
		EventDetails{Origin: "payer", Cause: "billing_request_collect_customer_details",
			Description: "Customer details have been collected for this billing request."}, nil, br.Metadata)
	if account != nil {
		br.Links.CustomerBankAccount = account.ID
		setActionStatus(br, actCollectBankAccount, actCompleted)
		s.emit(at, "billing_requests", "collect_bank_account", links(),
			EventDetails{Origin: "payer", Cause: "billing_request_collect_bank_account",
				Description: "Bank account details have been collected for this billing request."}, nil, br.Metadata)
	}
	setActionStatus(br, actConfirmPayerDetails, actCompleted)
	br.Status = brReadyToFulfil
	s.emit(at, "billing_requests", "payer_details_confirmed", links(),
		EventDetails{Origin: "payer", Cause: "billing_request_payer_details_confirmed",
			Description: "Payer has confirmed all their details for this billing request."}, nil, br.Metadata)
	if f.AutoFulfil {
		s.fulfil(br, at, originGoCardless, f.ID, nil)
	}
	return nil
}

func nonEmpty(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

// schedulePayer plays the payer of a new flow as the first matching
// billing_requests scenario rule says: authorised (complete the flow
// after_days working days later, at the daily run), abandoned (visit and
// exit it), or ignored. Without a rule the payer does nothing; tests and
// the control API act for them.
func (s *Sim) schedulePayer(br *BillingRequest, f *BillingRequestFlow, now time.Time) {
	sj := subject{metadata: br.Metadata}
	if c, ok := s.customers.get(br.Links.Customer); ok {
		cc := *c
		if p := f.PrefilledCustomer; p != nil {
			cc.Email, cc.GivenName, cc.FamilyName, cc.CompanyName =
				firstOf(p.Email, cc.Email), firstOf(p.GivenName, cc.GivenName), firstOf(p.FamilyName, cc.FamilyName),
				firstOf(p.CompanyName, cc.CompanyName)
		}
		sj.customer = &cc
	}
	if br.MandateRequest != nil {
		sj.currency, sj.scheme = br.MandateRequest.Currency, br.MandateRequest.Scheme
	}
	rule := s.match("billing_requests", sj)
	if rule == nil || rule.Outcome == payerIgnores {
		return
	}
	at := nextRun(now)
	if rule.AfterDays > 0 {
		at = runAt(addWorkingDays(dateOf(nextRun(now)), rule.AfterDays))
	}
	outcome := rule.Outcome
	s.schedule(at, func(at time.Time) {
		if f.state != flowOpen || !at.Before(f.expires) || (br.Status != brPending && br.Status != brReadyToFulfil) {
			return
		}
		if outcome == payerAbandons {
			s.abandonFlow(f, br, at)
			return
		}
		if err := s.completeFlow(f, br, Payer{}, at); err != nil {
			s.log.Warn("gcsim: simulated payer could not complete the flow", "flow", f.ID, "err", err)
		}
	})
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Payer outcomes of billing_requests scenario rules.
const (
	payerAuthorises = "authorised"
	payerAbandons   = "abandoned"
	payerIgnores    = "ignored"
)

func (b *BillingRequest) key() string       { return b.ID }
func (b *BillingRequest) seqNo() uint64     { return b.seq }
func (f *BillingRequestFlow) key() string   { return f.ID }
func (f *BillingRequestFlow) seqNo() uint64 { return f.seq }
