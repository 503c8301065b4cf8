package gocardless

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error types GoCardless puts in APIError.Type.
const (
	TypeInvalidAPIUsage  = "invalid_api_usage"
	TypeInvalidState     = "invalid_state"
	TypeValidationFailed = "validation_failed"
	TypeGoCardless       = "gocardless"
)

// Reasons the client acts on.
const (
	// ReasonIdempotentCreationConflict is the reason of a 409 answering a
	// create whose idempotency key was used before.
	ReasonIdempotentCreationConflict = "idempotent_creation_conflict"
	// ReasonBankAccountExists answers a customer bank account that
	// GoCardless already holds: validation_failed, HTTP 409, with the
	// existing account in links.customer_bank_account
	// (gocardless-pro-python tests/fixtures/validation_failed_duplicate_bank_account_error.json).
	ReasonBankAccountExists = "bank_account_exists"
	// ReasonRetryFailed answers retrying a payment that has not failed
	// (gocardless-pro-java PaymentService.java, retry).
	ReasonRetryFailed = "retry_failed"
	// ReasonMandateIsInactive answers a payment on a mandate that can no
	// longer be charged (PaymentService.java, create).
	ReasonMandateIsInactive = "mandate_is_inactive"
)

// ExistingBankAccount returns the bank account a bank_account_exists
// refusal names, so that the caller can use it instead of a new one.
func ExistingBankAccount(err error) (string, bool) {
	var e *APIError
	if !errors.As(err, &e) {
		return "", false
	}
	d, ok := e.reason(ReasonBankAccountExists)
	if !ok || d.Links["customer_bank_account"] == "" {
		return "", false
	}
	return d.Links["customer_bank_account"], true
}

// IsForbidden reports whether err is a 403 answer: the access token may
// not do this. Creating customer bank accounts or mandates directly meets
// it on a creditor without custom payment pages
// (Creditor.CustomPaymentPagesEnabled); GoCardless does not publish a
// more specific reason, so only the status is relied on.
func IsForbidden(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == http.StatusForbidden
}

var (
	// ErrUnavailable means the client refused a call without sending it
	// because its circuit breaker is open: GoCardless failed repeatedly
	// and is being left alone for a while. Retry later.
	ErrUnavailable = errors.New("gocardless: unavailable")
	// ErrIdempotencyKey is returned when a create or action is called
	// without an idempotency key.
	ErrIdempotencyKey = errors.New("gocardless: idempotency key required")
)

// APIError is an error answer from GoCardless.
type APIError struct {
	Type             string // invalid_api_usage, invalid_state, validation_failed, gocardless
	Code             int    // HTTP status
	Message          string
	RequestID        string
	DocumentationURL string
	Errors           []ErrorDetail
}

// ErrorDetail is one reason of an APIError. Validation errors carry
// Field and RequestPointer (e.g. "/payments/amount").
type ErrorDetail struct {
	Reason         string            `json:"reason"`
	Message        string            `json:"message"`
	Field          string            `json:"field"`
	RequestPointer string            `json:"request_pointer"`
	Links          map[string]string `json:"links"`
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", e.Code)
	if e.Type != "" {
		b.WriteString(" " + e.Type)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	for i, d := range e.Errors {
		if i == 0 {
			b.WriteString(" (")
		} else {
			b.WriteString("; ")
		}
		switch {
		case d.Field != "":
			b.WriteString(d.Field + " " + d.Message)
		case d.Reason != "":
			b.WriteString(d.Reason)
		default:
			b.WriteString(d.Message)
		}
		if i == len(e.Errors)-1 {
			b.WriteString(")")
		}
	}
	if e.RequestID != "" {
		b.WriteString(" [request " + e.RequestID + "]")
	}
	return b.String()
}

// reason returns the first detail with the given reason.
func (e *APIError) reason(r string) (ErrorDetail, bool) {
	for _, d := range e.Errors {
		if d.Reason == r {
			return d, true
		}
	}
	return ErrorDetail{}, false
}

// IsValidation reports whether err is a validation_failed answer: the
// request is wrong and will fail again unchanged.
func IsValidation(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Type == TypeValidationFailed
}

// IsInvalidState reports whether err is an invalid_state answer, such as
// cancelling a payment that was already submitted.
func IsInvalidState(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Type == TypeInvalidState
}

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == http.StatusNotFound
}

// HasReason reports whether err is an APIError with a detail of the given
// reason, e.g. "mandate_is_inactive".
func HasReason(err error, reason string) bool {
	var e *APIError
	if !errors.As(err, &e) {
		return false
	}
	_, ok := e.reason(reason)
	return ok
}

// Temporary reports whether a call that failed with err may succeed if
// made again later with the same idempotency key: the breaker was open,
// GoCardless failed (5xx) or limited the rate (429), or the network failed.
// A deadline that ran out counts as temporary too; a cancelled context and
// answers about the request itself (4xx) do not.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrIdempotencyKey) {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var e *APIError
	if errors.As(err, &e) {
		return e.Code == http.StatusTooManyRequests || e.Code >= 500
	}
	var n *networkError
	return errors.As(err, &n)
}

// networkError marks a failure to get any answer: the request may or may
// not have reached GoCardless.
type networkError struct{ err error }

func (e *networkError) Error() string { return e.err.Error() }
func (e *networkError) Unwrap() error { return e.err }
