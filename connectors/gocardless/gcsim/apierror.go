package gcsim

import (
	"net/http"
	"strings"
)

// Error types GoCardless uses in error bodies.
const (
	typeInvalidAPIUsage  = "invalid_api_usage"
	typeInvalidState     = "invalid_state"
	typeValidationFailed = "validation_failed"
	typeGoCardless       = "gocardless"
)

const docsURL = "https://developer.gocardless.com/api-reference#"

// apiError is an error response in GoCardless's shape:
//
//	{"error": {"message", "type", "code", "request_id", "documentation_url", "errors": [...]}}
type apiError struct {
	status  int
	typ     string
	message string
	errors  []errorItem
	header  http.Header // extra response headers, e.g. Retry-After
}

// errorItem is one entry of error.errors.
type errorItem struct {
	Reason         string            `json:"reason,omitempty"`
	Message        string            `json:"message"`
	Field          string            `json:"field,omitempty"`
	RequestPointer string            `json:"request_pointer,omitempty"`
	Links          map[string]string `json:"links,omitempty"`
}

type errorBody struct {
	Error errorPayload `json:"error"`
}

type errorPayload struct {
	Message          string      `json:"message"`
	Type             string      `json:"type"`
	Code             int         `json:"code"`
	RequestID        string      `json:"request_id"`
	DocumentationURL string      `json:"documentation_url"`
	Errors           []errorItem `json:"errors"`
}

func (e *apiError) body(requestID string) errorBody {
	anchor := e.typ
	if len(e.errors) > 0 && e.errors[0].Reason != "" {
		anchor = e.errors[0].Reason
	}
	errs := e.errors
	if errs == nil {
		errs = []errorItem{}
	}
	return errorBody{Error: errorPayload{
		Message:          e.message,
		Type:             e.typ,
		Code:             e.status,
		RequestID:        requestID,
		DocumentationURL: docsURL + anchor,
		Errors:           errs,
	}}
}

// usageError is an invalid_api_usage error with one reason.
func usageError(status int, reason, message string) *apiError {
	return &apiError{status: status, typ: typeInvalidAPIUsage, message: message,
		errors: []errorItem{{Reason: reason, Message: message}}}
}

// stateError is a 422 invalid_state error with one reason.
func stateError(reason, message string) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, typ: typeInvalidState, message: message,
		errors: []errorItem{{Reason: reason, Message: message}}}
}

func notFound() *apiError {
	return usageError(http.StatusNotFound, "resource_not_found", "Resource not found")
}

func linkNotFound(resource, field string) *apiError {
	e := usageError(http.StatusBadRequest, "link_not_found",
		"One of the link[resource] IDs in the request was not found")
	e.errors[0].Field = field
	e.errors[0].RequestPointer = pointer(resource, field)
	return e
}

func invalidFilters(message string) *apiError {
	return usageError(http.StatusBadRequest, "invalid_filters", message)
}

func internalError() *apiError {
	return &apiError{status: http.StatusInternalServerError, typ: typeGoCardless,
		message: "Uh-oh! Something went wrong on our end. Please retry, or contact support with this request_id.",
		errors: []errorItem{{Reason: "internal_server_error",
			Message: "An internal error occurred while processing your request."}}}
}

// fieldErrors collects validation failures for one request, so that a
// client sees every bad field at once, as GoCardless reports them.
type fieldErrors struct {
	resource string
	items    []errorItem
}

// add records that field (e.g. "amount" or "links[mandate]") is invalid.
func (f *fieldErrors) add(field, message string) {
	f.items = append(f.items, errorItem{Field: field, Message: message, RequestPointer: pointer(f.resource, field)})
}

// addAt records an error at an explicit request pointer (e.g. for one
// metadata key).
func (f *fieldErrors) addAt(field, ptr, message string) {
	f.items = append(f.items, errorItem{Field: field, Message: message, RequestPointer: ptr})
}

func (f *fieldErrors) empty() bool { return len(f.items) == 0 }

func (f *fieldErrors) err() *apiError {
	if f.empty() {
		return nil
	}
	return &apiError{status: http.StatusUnprocessableEntity, typ: typeValidationFailed,
		message: "Validation failed", errors: f.items}
}

// pointer returns the JSON pointer of field inside the request envelope,
// e.g. pointer("payments", "links[mandate]") = "/payments/links/mandate".
func pointer(resource, field string) string {
	field = strings.ReplaceAll(field, "[", "/")
	field = strings.ReplaceAll(field, "]", "")
	return "/" + resource + "/" + field
}
