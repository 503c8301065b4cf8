// Package ifscloud is ml-connector's client for IFS Cloud: it reads customers
// and invoices ready for collection through the OData v4 projections, page by
// page after a (modified time, key) watermark, and writes payment and refund
// outcomes back the way standard IFS records customer payments (a Mixed
// Payment, or a camt.054 file for External Files), with ETag concurrency
// ([Writer]; docs/ifs.md has the sources).
//
// Every request goes through the same discipline: an OAuth2 client-credentials
// token (cached; refreshed before it expires and at least every token_max_age,
// and once more, with a retry, when IFS answers 401), a per-tenant request
// limiter, exponential backoff with jitter on 429 and 5xx that honours
// Retry-After, and a circuit breaker, all traced with otelhttp. IFS error
// bodies ({"error":{"code","message","details"}}) become [*Error], which
// matches [ErrNotFound], [ErrUnavailable], [ErrConflict], [ErrInvalid] or
// [ErrUnauthorized] with errors.Is.
//
// # Connection settings
//
// A connection's settings JSON is read by [ParseSettings]. Required: base_url,
// client_id, company_codes (and the secret client_secret, passed to [New]).
// Everything else is optional; the defaults are what the simulator
// (package ifssim) implements, and the ones marked * are not documented
// publicly by IFS and must be checked against the tenant:
//
//	realm                  IAM realm of the token URL (default "ifs")
//	token_url              full token URL (default <base_url>/auth/realms/<realm>/protocol/openid-connect/token)
//	scope                  OAuth2 scope (default "openid microprofile-jwt")
//	token_max_age          longest a token is used, whatever its expires_in (default "60m")
//	api_path               projection root (default "/main/ifsapplications/projection/v1")
//	page_size              $top of a query, 1..5000 (default 5000)
//	requests_per_minute    client-side budget per tenant, shared by the connections of one
//	                       process to the same base_url (the first one's value wins) (default 1000)
//	request_timeout        bound of one HTTP request (default "60s")
//	write_attempts         tries of a write that loses an ETag race (412) (default 5)
//
//	invoice_projection     default "CustomerOrderInvoiceHandling"
//	invoice_entity_set     default "CustomerOrderInvHeadSet"
//	invoice_ready_filter   *OData condition for "ready for collection" (default: Objstate is
//	                       PostedAuth or PartlyPaidPosted, qualified with the invoice projection's enum)
//	invoice_key_numeric    whether the invoice key is an OData number (default true)
//	invoice_fields         *object renaming logical fields (see below)
//	invoice_extra_fields   more fields to read into erp_fields (default ["Objstate","PartyType"])
//
//	customer_projection    default "CustomerHandling"
//	customer_entity_set    default "CustomerInfoSet"
//	customer_filter        extra OData condition on customers (default none)
//	customer_key_numeric   default false
//	customer_fields        *object renaming logical fields
//	customer_extra_fields  default []
//	customer_company_entity_set  *company-specific customer data (default "IdentityInvoiceInfoSet")
//	customer_address_entity_set  *addresses (default "CustomerInfoAddressSet")
//	customer_contact_entity_set  *contact methods (default "CustomerInfoCommMethodSet")
//	customer_bank_entity_set     *payment addresses (default "PaymentAddressSet")
//	customer_bank_fields   *object renaming the payment address's logical fields
//
//	writeback              how outcomes are written (see [Writer]): "mixed_payment" (default) or
//	                       "camt054"
//	mixed_payment_projection              *default "MixedPaymentHandling"
//	mixed_payment_entity_set              *default "MixedPaymentSet"
//	lump_sum_entity_set                   *default "MixedPaymentLumpSumSet"
//	mixed_payment_transaction_entity_set  *default "MixedPaymentTransactionSet"
//	approve_action, cancel_action         *bound actions of the mixed payment (default
//	                       "MixedPayment_Approve", "MixedPayment_Cancel")
//	mixed_payment_reference_field         *field holding the outcome id (default "Description")
//	payment_institute, cash_account       the GoCardless cash account in IFS (default "GOCARDLESS")
//	camt054_dir            writeback camt054: the absolute directory the site's IFS loads files from
//	camt054_account_iban   the cash account's IBAN in the files; else camt054_account_id
//	                       (default "GOCARDLESS")
//	mandate_writeback      "none" (default: standard IFS has no GoCardless mandate status) or
//	                       "legacy_mandate_log" (ml-connector's own action, which a site builds)
//	receipt_on             who books the receipts: "confirmed" (default: each payment outcome;
//	                       a payout books its fees only) or "payout" (the payout books its
//	                       lines and fees; payment and refund outcomes post nothing)
//	payout_fee_accounts    company -> GL account (code part A) of GoCardless fees
//	payout_fee_tax_accounts company -> GL account of the tax in those fees (optional)
//	mandate_log_entity_set legacy: default "DirectDebitMandateLogSet"
//	mandate_action         legacy: default "CustomerInfo_RegisterDirectDebitMandate"
//
// Logical invoice fields and their default IFS names: company Company, key
// InvoiceId, number InvoiceNo, customer Identity, open_amount *OpenAmount,
// gross_amount *GrossAmount, currency Currency, invoice_date InvoiceDate,
// due_date DueDate, payment_terms PayTermId, business_unit (none), modified
// *Rowversion. Customer fields (of CustomerInfoSet, which is keyed by
// CustomerId and has no company): key CustomerId, name Name, country
// Country, language DefaultLanguage, identity_number AssociationNo,
// modified *Rowversion. Payment address fields: account_holder
// *AccountHolder, iban *Iban, account_number *Account, branch_code
// *ClearingNumber, bank_code *BankCode, bank_country *BankCountry. An empty
// name means the tenant has no such field; the required ones (company, key,
// modified, and for invoices open_amount and currency, for customers name)
// cannot be empty.
//
// A customer is one of a company's when the company-specific set has a row
// (Company, Identity, PartyType 'Customer'; DefCurrency is the customer's
// currency there); its address is the one with the lowest AddressId in the
// address set (Address1, Address2, City, County, ZipCode, Country), its
// e-mail and phone the default E_MAIL and PHONE of the contact set
// (CustomerId, MethodId, Value, MethodDefault), its bank account the
// default payment address of the company (Identity, AddressId,
// DefaultAddress). The customer's version (the event's) folds in the ETags
// of all these rows, and Customer.Changed is the newest of their modified
// times (the customers' modified field, which the parts carry too).
// Changes are read by CustomerInfo's modified time and, per part, by the
// part's own (PartChanges).
//
// The mixed payment preset writes these fields (the names are the
// simulator's and must be checked against the tenant, see docs/ifs.md):
// the mixed payment's Company, InstituteId, ShortName, VoucherDate and the
// reference field; the lump sum's Company, MixedPaymentId, LumpSumAmount,
// Currency; the customer payment line's Company, MixedPaymentId,
// LumpSumId, TransactionType ('CustomerPayment'), PartyType ('Customer'),
// Identity, InvoiceId, CurrAmount, Currency, PaymentReference (the
// GoCardless id) and Text; and it reads MixedPaymentId, LumpSumId,
// TransactionId and Objstate (NotApproved, Approved, Cancelled).
//
// Amounts are never floats: the client asks for IEEE754Compatible=true, so
// IFS sends decimals as strings, and keeps the exact text of a JSON number
// when a server sends one anyway.
package ifscloud
