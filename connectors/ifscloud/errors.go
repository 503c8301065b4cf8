package ifscloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Classes of failure a caller branches on with errors.Is. erp-poster maps
// them to gRPC codes: NotFound, Unavailable, Aborted, InvalidArgument.
var (
	// ErrNotFound: IFS has no such entity (invoice, customer), or the
	// company is not one of the connection's.
	ErrNotFound = errors.New("ifs: not found")
	// ErrUnavailable: IFS is down, keeps answering 429 or 5xx after the
	// retries, the circuit breaker is open, or the credentials were refused.
	// Nothing was written; retry later.
	ErrUnavailable = errors.New("ifs: unavailable")
	// ErrConflict: a write lost its ETag race (412) on every attempt.
	// Nothing was written; retry later.
	ErrConflict = errors.New("ifs: concurrent change")
	// ErrInvalid: IFS refused the request itself (4xx validation), or the
	// input is malformed. Retrying as is cannot help.
	ErrInvalid = errors.New("ifs: invalid request")
	// ErrUnauthorized: the token endpoint refused the client credentials,
	// or IFS refused a fresh token (401) or the privileges (403). It also
	// matches ErrUnavailable: an operator must fix the connection, after
	// which a retry succeeds.
	ErrUnauthorized = errors.New("ifs: unauthorized")
)

// Error is an error answer from IFS Cloud: the HTTP status and the parsed
// body {"error":{"code","message","details":[...]}} (or an OAuth2 error body
// from the token endpoint).
type Error struct {
	Status  int
	Code    string
	Message string
	Details []ErrorDetail
}

// ErrorDetail is one entry of an IFS error's details.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target,omitempty"`
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ifs: %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	for _, d := range e.Details {
		fmt.Fprintf(&b, "; %s %s", d.Code, d.Message)
	}
	return b.String()
}

// Is places the error in one of the classes above.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusPreconditionFailed
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	case ErrUnavailable:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden ||
			e.Status == http.StatusTooManyRequests || e.Status >= 500
	case ErrInvalid:
		return e.Status >= 400 && e.Status < 500 && !slices.Contains([]int{
			http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
			http.StatusPreconditionFailed, http.StatusTooManyRequests}, e.Status)
	}
	return false
}

// parseError builds the Error for a non-2xx answer. A body that is not an
// IFS error (an HTML page from a proxy, say) is kept, shortened, as the
// message.
func parseError(status int, body []byte) *Error {
	e := &Error{Status: status}
	var wire struct {
		Error *struct {
			Code    string        `json:"code"`
			Message string        `json:"message"`
			Details []ErrorDetail `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &wire) == nil && wire.Error != nil {
		e.Code, e.Message, e.Details = wire.Error.Code, wire.Error.Message, wire.Error.Details
		return e
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	e.Message = msg
	return e
}
