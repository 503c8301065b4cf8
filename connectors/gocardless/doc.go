// Package gocardless is the connector's client for the GoCardless API
// (version 2015-07-06) and its webhooks.
//
// A [Client] talks to one GoCardless account with one access token and
// guarantees:
//
//   - No double charge. Every create and action takes an idempotency key
//     from the caller (derive it from the ERP identity of what is being
//     created) and refuses an empty one: a random key per call would make
//     a replayed call a second payment. The key is sent on every retry of
//     the call. When GoCardless answers 409 idempotent_creation_conflict,
//     the client fetches the resource named by links.conflicting_resource_id
//     and returns it with existed = true: a replayed create is a success
//     that says so, not an error and not a second payment. (existed is
//     also true when the earlier request was this call's own attempt whose
//     answer was lost.) GoCardless does not replay actions by key; an
//     action retried after a lost answer that meets an invalid_state
//     refusal returns the resource if it shows the action's effect.
//   - Only safe requests are retried: GETs, POSTs carrying an idempotency
//     key (all creates and actions) and PUTs (an update sets the same
//     fields again). A 429 waits until the rate limit resets (Retry-After,
//     else RateLimit-Reset) plus jitter; 5xx and network errors back off
//     exponentially with full jitter (platform/retry); attempts are
//     bounded, and the context's deadline is respected: a wait that would
//     outlast it fails at once, with the last failure wrapped.
//   - The rate limit is approached but not hit. RateLimit-Limit, -Remaining
//     and -Reset are read from every answer (measured against its Date
//     header when the clocks disagree); calls go at once while more than a
//     quarter of the window's budget is left, the last quarter is spread
//     evenly over the time to the reset, and at zero calls wait for it.
//     Share one Client per access token: the budget is per token.
//   - An outage makes callers back off at once. A circuit breaker per
//     client (platform/breaker) judges whole calls: one that gives up on
//     5xx, network errors or 429s counts as a failure; 4xx answers prove
//     GoCardless is up and count as successes, as do calls that rode out a
//     blip. When open it fails calls without sending them, with an error
//     matching both [ErrUnavailable] and breaker.IsOpen.
//   - Errors GoCardless returns are [*APIError] values (errors.As) with the
//     type, HTTP code, message, request id, documentation URL and
//     per-field reasons; see [IsValidation], [IsInvalidState],
//     [IsNotFound], [HasReason], and [Temporary] for "try again later with
//     the same key".
//   - The access token is revealed only into the Authorization header. It
//     never appears in an error, a log record or a span: spans (otelhttp)
//     are named "gocardless METHOD /path/{id}" and record no headers.
//   - Amounts are int64 minor units of the currency, as GoCardless sends
//     them; nothing here uses floats. Payout items are the exception
//     GoCardless makes: decimal strings in the minor unit to one decimal
//     place, kept as sent and read exactly as tenths ([PayoutItem.Tenths]);
//     a payout's amount is their sum rounded ([CheckPayoutItems]). Dates
//     are "YYYY-MM-DD" strings.
//
// The webhook helpers [Sign], [VerifySignature] and [ParseWebhook] check
// the Webhook-Signature header (HMAC-SHA256 over the exact raw body, in
// constant time, with several secrets for rotation) and decode a delivery
// into typed [Event] values that keep their original JSON, so unknown
// fields and event types are passed on rather than rejected.
package gocardless
