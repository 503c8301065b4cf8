// Package gcsim is a faithful, in-process simulator of the GoCardless API,
// for tests, benchmarks and the demo. It enforces the rules the real API
// enforces (authentication, versioning, validation, idempotency keys, rate
// limits, cursor paging), drives mandates, payments, refunds, subscriptions
// and payouts through their lifecycles on a controllable clock, records
// every change as an event, delivers events as signed webhooks, and injects
// the faults integrations must survive. It shares no code with the client
// package, so each checks the other.
//
// # Use
//
// In tests:
//
//	srv := gcsim.NewServer(t, gcsim.Options{Tokens: []string{"token"},
//		Webhook: gcsim.WebhookOptions{URL: receiver.URL, Secret: "secret"}})
//	// ... call srv.URL with any GoCardless client ...
//	srv.Advance(72 * time.Hour)   // mandates activate, payments progress
//	srv.Flush(ctx)                // deliver queued webhooks now
//	srv.Payments(), srv.Events(), srv.Deliveries()
//
// A *Sim is an http.Handler; the gcsim command serves one (run it with
// --help for its settings).
//
// # The API
//
// Base URL as configured; every request needs "Authorization: Bearer
// <token>" (401 invalid_api_usage otherwise: missing_authorization_header,
// invalid_authorization_header, access_token_not_found,
// access_token_not_active) and "GoCardless-Version: 2015-07-06" (400
// missing_version_header / version_not_found). A body needs Content-Type
// application/json (or application/vnd.api+json; else 415
// invalid_content_type); invalid JSON is 400 bad_request, a body without
// the resource envelope 400 invalid_document_structure.
//
//	GET  /creditors, /creditors/{id}
//	POST /customers; GET /customers, /customers/{id}; PUT /customers/{id}
//	POST /customer_bank_accounts; GET (list, id); PUT (metadata);
//	     POST /customer_bank_accounts/{id}/actions/disable
//	POST /mandates; GET (list, id); PUT (metadata); POST /mandates/{id}/actions/cancel
//	POST /payments; GET (list, id); PUT (metadata, retry_if_possible);
//	     POST /payments/{id}/actions/cancel, /payments/{id}/actions/retry
//	POST /refunds; GET (list, id); PUT (metadata)
//	POST /subscriptions; GET (list, id); PUT (name, metadata);
//	     POST /subscriptions/{id}/actions/cancel|pause|resume
//	GET  /events (filters below), /events/{id}
//	GET  /payouts, /payouts/{id}; PUT /payouts/{id} (metadata)
//	GET  /payout_items?payout={id} (limit, after, before, include_2020_tax_cutover)
//	POST /billing_requests (mandate_request only); GET (list, id);
//	     POST /billing_requests/{id}/actions/notify|fulfil|cancel
//	POST /billing_request_flows (not idempotent, not readable: as GoCardless)
//	POST /scenario_simulators/{identity}/actions/run (payment_chargeback_settled,
//	     payment_late_failure_settled, mandate_transferred, mandate_suspended_by_payer;
//	     see simulators.go)
//
// Mandate set-up. A creditor that GoCardless has not approved for custom
// payment pages (Creditor.CustomPaymentPagesEnabled false: the default,
// as for a new account) may not create customer bank accounts or mandates
// through the API: 403 invalid_api_usage insufficient_permissions. It sets
// mandates up with a billing request (a mandate_request by currency,
// optionally scheme) and a flow: the flow's authorisation_url is the
// payer's page, valid 7 days (expires_at). The simulator plays the payer:
// CompleteFlow (or POST /_sim/billing_request_flows/{id}/complete) fills
// in the customer, collects a bank account (an identical one the customer
// already has is reused) and, the flow auto-fulfilling, fulfils the
// request, creating the mandate; AbandonFlow visits and exits the page;
// ExpireFlow ends the flow's life now. billing_requests scenario rules
// play payers without a test driving them: authorised (after_days working
// days), abandoned or ignored. Each step is an event of resource type
// billing_requests (created, flow_created, flow_visited,
// collect_customer_details, collect_bank_account, payer_details_confirmed,
// fulfilled, flow_exited, cancelled), linking billing_request,
// billing_request_flow, customer, customer_bank_account and
// mandate_request_mandate, as developer.gocardless.com "Responding to
// Billing Request events" lists them. notify is refused for mandate-only
// requests (GoCardless documents it for Pay by Bank only) unless
// Options.NotifyMandateRequests says otherwise.
//
// Bodies and responses use GoCardless's envelopes ({"payments": {...}});
// actions take an optional {"data": {"metadata": ..., "charge_date": ...,
// "pause_cycles": ...}}. Creates answer 201. IDs have GoCardless's prefixes
// (CR, CU, BA, MD, PM, RF, SB, EV, PO, and WB for webhooks) and twelve
// upper-case alphanumerics; Options.Seed makes them repeatable.
//
// Lists are newest first, limit 1–500 (default 50; anything else 400
// invalid_filters), with cursors: after=X gives items older than X,
// before=X the items newer than X; meta.cursors.after is null on the last
// page and meta.cursors.before on the first. Lists take created_at[gt],
// [gte], [lt], [lte] and the usual link/status filters. GET /events takes
// action, resource_type, created_at[...], at most one of payment, mandate,
// refund, subscription, payout, customer, creditor, parent_event,
// billing_request (matching the event's links; resource_type cannot be
// combined with one of them except customer and parent_event), and
// include (the singular of resource_type; adds "linked": {"payments":
// [...]}).
//
// Errors are {"error": {"message", "type", "code", "request_id",
// "documentation_url", "errors": [...]}} with type invalid_api_usage,
// invalid_state, validation_failed or gocardless. Validation failures are
// 422 with one entry per bad field, each with field, request_pointer
// (e.g. /payments/amount) and message. The simulator enforces:
//
//   - required fields; given_name and family_name unless company_name;
//     email, ISO country and language formats;
//   - currency ↔ scheme ↔ country: GBP/bacs/GB, EUR/sepa_core/euro-area
//     countries, SEK/autogiro/SE, DKK/betalingsservice/DK, AUD/becs/AU,
//     NZD/becs_nz/NZ, CAD/pad/CA, USD/ach/US. A bank account takes an IBAN
//     (checked: country, length, mod-97) or local details (GB, US, CA, AU,
//     NZ, SE, DK; digits and lengths checked); Swedish accounts refuse an
//     IBAN; account_type (checking/savings) is required for USD only;
//   - default amount limits per scheme, in minor units: bacs and sepa_core
//     100–500000, autogiro and betalingsservice 1000–5000000, becs and
//     becs_nz 200–1000000, pad 200–500000, and for ach (GoCardless publishes
//     none) 100–500000;
//   - payment reference length: ach 10, autogiro 11, bacs 10, becs 30,
//     becs_nz 12, betalingsservice 30, sepa_core 140; pad takes none; a
//     bacs reference needs Creditor.CustomPaymentReferences (GoCardless
//     Plus, Pro or Enterprise); becs references are unique per creditor;
//   - ACH mandates need payer_ip_address unless authorisation_source is
//     telephone or paper;
//   - subscription month lowercase and yearly only, given with
//     day_of_month;
//   - metadata: at most 3 keys, keys up to 50 and values up to 500
//     characters, values strings;
//   - charge_date (rolled forward to a working day) on or after the
//     mandate's next_possible_charge_date; a subscription's start_date too;
//   - payments and subscriptions only on pending or active mandates (else
//     422 invalid_state mandate_is_inactive); mandates only on enabled bank
//     accounts (bank_account_disabled); duplicate bank accounts of a
//     customer 409 validation_failed bank_account_exists with
//     links.customer_bank_account;
//   - refunds only of confirmed or paid_out payments
//     (refund_payment_invalid_state), with total_amount_confirmation equal
//     to the payment's existing refunds plus this one
//     (total_amount_confirmation_invalid), and never more than the payment
//     (available_refund_amount_insufficient);
//   - state changes: cancellation_failed, disable_failed,
//     subscription_not_active, subscription_not_paused, and for retries
//     retry_failed (documented) and retry_limit_reached (a payment is
//     retried at most 3 times). These reason names are the simulator's
//     where GoCardless's are not published.
//
// Every attribute of a resource is in its JSON, unset ones as null, as in
// GoCardless's recorded responses; links carry only what is set.
//
// Idempotency-Key (at most 128 characters) on a create: once a create with
// a key has succeeded, any create of the same resource type with that key
// by the same token answers 409 invalid_state idempotent_creation_conflict
// with links.conflicting_resource_id. Failed creates do not use up the
// key. Actions ignore the header (repeating an action meets its state
// check instead).
//
// Rate limits are per token: RateLimit requests per RateWindow (default
// 1000 per minute), counted in fixed windows that open with a token's
// first request. Every authenticated response carries RateLimit-Limit,
// RateLimit-Remaining and RateLimit-Reset (an HTTP date); over the limit
// the answer is 429 invalid_api_usage rate_limit_exceeded with Retry-After
// in seconds.
//
// # Time and lifecycles
//
// The Clock drives lifecycles: a ManualClock (the default, starting at
// DefaultStart, a Monday 08:00 UTC) moves only when advanced; NewRealClock
// follows the wall clock and NewScaledClock runs faster. Transitions happen
// at the daily processing run, 09:00 UTC on working days (not Saturday,
// Sunday, 1 January, 25 or 26 December), in time order, and Advance
// returns only after all those due have been applied, so tests are
// deterministic. Per scheme, a mandate becomes active activation working
// days after submission, and a payment is submitted lead working days
// before its charge date:
//
//	scheme            activation  lead
//	bacs                  2         2
//	sepa_core             1         2
//	autogiro              2         1
//	betalingsservice      2         5
//	becs, becs_nz         1         2
//	pad                   1         3
//	ach                   1         2
//
// The lifecycles, in working days:
//
//   - Mandate: pending_submission → submitted (next run) → active, or
//     failed / later cancelled / expired by scenario.
//     next_possible_charge_date is the next run's date (or the activation
//     date, if later) plus lead working days. A mandate that ends cancels
//     its unsubmitted payments (fails them, if it failed) and its
//     subscriptions, linking its event as parent_event.
//   - Payment: pending_submission → submitted (charge date − lead) →
//     confirmed (charge date + 1) → paid_out (+2, into the day's payout per
//     creditor and currency, which is paid a working day later: see
//     Payouts below); or failed
//     at +1; or failed at +2 after confirmation (late failure); or
//     charged_back after paid_out. Failures carry details.cause,
//     reason_code and will_attempt_retry. A payment with retry_if_possible
//     whose failure is insufficient_funds or refer_to_payer is retried
//     automatically (resubmission_requested, cause payment_autoretried).
//     bank_account_closed and mandate_cancelled failures also cancel the
//     mandate.
//   - Refund: created → pending_submission (next run) → submitted (+1) →
//     paid (+1), or bounced / failed, or paid then funds_returned.
//   - Subscription: each payment is created lead+3 working days before its
//     charge date's submission (payment_created), until count or end_date
//     (finished). pause (optionally for pause_cycles charges), resume and
//     cancel (which cancels its unsubmitted payments) are supported.
//
// # Payouts
//
// GoCardless pays a creditor's balance out per currency every working day
// (see payouts.go for the sources). Each payment paid out at a run goes
// into that run's payout as two items, payment_paid_out (+amount) and
// gocardless_fee (−fee, VAT included); refunds (payment_refunded when
// submitted, refund_funds_returned when they bounce, fail or come back)
// and charge-backs (payment_charged_back, the fee given back as a
// gocardless_fee credit, and surcharge_fee) wait in the balance, and the
// next payout takes them, oldest first, while its amount stays positive;
// chargeback_settled (and surcharge_fee_debited) then link that payout.
// The payment_chargeback_settled and payment_late_failure_settled scenario
// simulators settle into a payout of their own at once, which may be
// negative. A payout is pending (arrival_date null) until the next working
// day's run pays it (status paid, arrival_date, a payouts paid event).
//
// Item amounts are strings in the minor unit to one decimal place
// ("-264.0"), credits positive; a payout's amount is the sum of its items
// rounded to the minor unit (half away from zero), deducted_fees the fee
// items' sum negated and rounded. Fees (Options.Fees, default DefaultFees:
// 1% + 20 minor units, uncapped, no surcharge; Fees.Charge predicts a
// payment's) are kept to a tenth; GB
// and FR creditors pay 20% VAT on them (taxes, tax_currency GBP or EUR;
// tax in another currency has destination_amount null, its exchange rate
// never being confirmed here). GET /payout_items needs payout (400
// invalid_filters without), answers 404 for an unknown payout and 410
// gone for one created more than 6 months ago; its cursors are opaque. Not
// simulated: FX payouts (fx is null), app fees, revenue shares, the
// payouts fx_rate_confirmed and tax_exchange_rates_confirmed events,
// bounced payouts.
//
// Every change is an event (EV…) with created_at at the simulated time,
// resource_type, action, links, details {origin, cause, description,
// scheme, reason_code, will_attempt_retry}, metadata (from the action's
// data) and resource_metadata. Reason codes are the schemes' own where
// known: Bacs ARUDD-0/1/5/B, AUDDIS, ADDACS, DDICA; SEPA AM04, AC01, AC04,
// MD01, MD06, MS03; ACH R-codes; PAD 9xx.
//
// # Scenarios
//
// By default everything succeeds. Rules (see Rule, Options.Scenarios,
// SetScenarios) pick other outcomes, first match wins, e.g. in JSON:
//
//	[{"resource": "payments", "amount_suffix": "01", "outcome": "failed", "cause": "insufficient_funds"},
//	 {"resource": "payments", "metadata": {"case": "dispute"}, "outcome": "charged_back"},
//	 {"resource": "payments", "family_name": "Retry*", "outcome": "failed", "attempts": 1},
//	 {"resource": "mandates", "email": "*@closed.example", "outcome": "failed", "cause": "bank_account_closed"},
//	 {"resource": "refunds", "amount": 999, "outcome": "bounced"}]
//
// Conditions: email, given_name, family_name, company_name (globs on the
// customer), reference (glob), amount, amount_suffix, currency, scheme,
// metadata (exact pairs), attempts (payments: only the first N
// submissions). Outcomes: payments failed, late_failure, charged_back,
// paid_out; mandates failed, cancelled, expired, active; refunds bounced,
// failed, funds_returned, paid. cause and reason_code override the
// defaults; after_days delays charge-backs, mandate cancellation or expiry,
// and returned refund funds. BuiltinScenarios is a ready-made set.
//
// # Webhooks
//
// With a webhook URL, events are POSTed as {"events": [...], "meta":
// {"webhook_id": "WB…"}} with at most BatchSize (default 250) events per
// request, Content-Type application/json, Origin https://api.gocardless.com,
// User-Agent gocardless-webhook-service/1.1 and Webhook-Signature: the
// lowercase hex HMAC-SHA256 of the exact body, keyed with the secret as
// given. A non-2xx answer (or a network error, or a redirect, which is not
// followed) is retried with exponential backoff (RetryBase doubling up to
// RetryMax) until MaxAttempts. Deliveries() and GET /_sim/webhooks show
// each delivery's body, state and attempts.
//
// # Faults
//
// Faults (Options.Faults, SetFaults, PUT /_sim/faults) inject: latency on
// every API response; 500 `gocardless` errors at a rate or for the next N
// requests, optionally after the request took effect; 429 bursts for the
// next N requests; and, for webhooks, duplicated, dropped, reordered
// (reversed and held back behind a later batch) and badly signed (first
// attempt only) deliveries, at a rate or for the next N batches.
//
// # Control API
//
// Under /_sim/, unauthenticated, JSON in and out:
//
//	GET  /_sim/clock                 {"now", "mode"}
//	POST /_sim/clock/advance         {"by": "36h"} (or ?by=36h)
//	GET  /_sim/scenarios             the rules
//	PUT  /_sim/scenarios             [rules...] (replaces them)
//	GET  /_sim/faults                the faults (durations as "250ms")
//	PUT  /_sim/faults                {"latency", "server_error_rate", "server_error_next",
//	                                  "server_error_after_commit", "rate_limit_next",
//	                                  "rate_limit_retry_after", "webhook": {"duplicate_rate",
//	                                  "duplicate_next", "drop_rate", "drop_next", "reorder_rate",
//	                                  "reorder_next", "bad_signature_rate", "bad_signature_next"}}
//	GET  /_sim/webhooks[?state=]     deliveries (pending, delivered, failed, dropped)
//	POST /_sim/webhooks/flush        deliver now; returns the deliveries
//	PUT  /_sim/webhooks/endpoint     {"url", "secret"}
//	POST /_sim/tokens                {"token", "active": bool} (add or revoke)
//	POST /_sim/billing_request_flows/{id}/complete  [payer details] the payer completes the flow
//	POST /_sim/billing_request_flows/{id}/abandon   the payer opens and leaves it
//	POST /_sim/billing_request_flows/{id}/expire    the flow expires now
//	POST /_sim/reset                 forget all resources, events, keys, deliveries
//	GET  /_sim/state                 counts
//
// The same operations are methods on *Sim for in-process tests.
package gcsim
