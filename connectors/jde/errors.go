package jde

import (
	"errors"
	"fmt"
	"net/http"
)

// Classes of failure a caller can branch on with errors.Is. erp-poster maps
// them to gRPC codes: ErrInvalid to INVALID_ARGUMENT, ErrNotFound to
// NOT_FOUND, ErrUnavailable to UNAVAILABLE.
var (
	// ErrInvalid: the request can never succeed as sent (bad input, a
	// mapping missing from the connection's settings, a field JDE refuses).
	ErrInvalid = errors.New("jde: invalid request")
	// ErrNotFound: JDE has no such document, customer or orchestration.
	ErrNotFound = errors.New("jde: not found")
	// ErrUnavailable: AIS is down, overloaded or its breaker is open;
	// nothing was written and a later retry may succeed.
	ErrUnavailable = errors.New("jde: AIS unavailable")
	// ErrUnauthorized: AIS refused the credentials or the role.
	ErrUnauthorized = errors.New("jde: not authorized")
	// ErrInvalidToken: AIS answered 444 even right after a fresh login.
	ErrInvalidToken = errors.New("jde: session token invalid")
	// ErrResultSetLost: a paged BROWSE cannot be continued because AIS
	// forgot its result set (session lost, AIS restarted, result set timed
	// out) or a next-page call failed in a way that may have consumed a
	// page. The client has already logged in again; the caller must rerun
	// the query from its own last safe point.
	ErrResultSetLost = errors.New("jde: data service result set lost")
)

// StatusInvalidToken is the status AIS answers for an expired, logged-out
// or unknown session token (also after an AIS restart).
const StatusInvalidToken = 444

// Error is an AIS error response. Its fields are AIS's own
// ({"message","exception","timeStamp","status"}); it never holds request
// data, so it cannot carry a password.
type Error struct {
	// Op is what was being done, e.g. "dataservice F03B11" or
	// "orchestrator MLC_PostReceipt".
	Op         string
	HTTPStatus int
	Message    string
	Exception  string
	TimeStamp  string
	Status     string
	// StepError is the userDefinedErrorText of an orchestration step that
	// failed: the orchestration refused the request, whatever the status.
	StepError string
}

func (e *Error) Error() string {
	msg := e.Message
	if e.StepError != "" {
		msg = e.StepError
	}
	if msg == "" {
		msg = http.StatusText(e.HTTPStatus)
	}
	if e.Exception != "" {
		return fmt.Sprintf("jde: %s: HTTP %d: %s (%s)", e.Op, e.HTTPStatus, msg, e.Exception)
	}
	return fmt.Sprintf("jde: %s: HTTP %d: %s", e.Op, e.HTTPStatus, msg)
}

// Is classifies the response by its HTTP status.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnavailable:
		return e.StepError == "" && (e.HTTPStatus == http.StatusTooManyRequests || e.HTTPStatus >= 500)
	case ErrNotFound:
		return e.HTTPStatus == http.StatusNotFound
	case ErrInvalid:
		return e.StepError != "" || e.HTTPStatus == http.StatusBadRequest || e.HTTPStatus == http.StatusUnprocessableEntity ||
			e.HTTPStatus == http.StatusConflict || e.HTTPStatus == http.StatusRequestEntityTooLarge ||
			e.HTTPStatus == http.StatusUnsupportedMediaType
	case ErrUnauthorized:
		return e.HTTPStatus == http.StatusUnauthorized || e.HTTPStatus == http.StatusForbidden
	case ErrInvalidToken:
		return e.HTTPStatus == StatusInvalidToken
	}
	return false
}
