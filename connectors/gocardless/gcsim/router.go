package gcsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// APIVersion is the only GoCardless-Version the simulator accepts.
const APIVersion = "2015-07-06"

const (
	maxBodyBytes       = 1 << 20
	maxIdempotencyKey  = 128
	controlPrefix      = "/_sim/"
	headerRequestID    = "X-Request-Id"
	headerIdempotency  = "Idempotency-Key"
	headerVersion      = "GoCardless-Version"
	headerContentType  = "Content-Type"
	contentTypeJSON    = "application/json"
	contentTypeJSONAPI = "application/vnd.api+json"
)

// request is an authenticated API request, as handlers see it.
type request struct {
	method  string
	params  []string // path wildcards, in order
	query   url.Values
	body    []byte
	token   string
	idemKey string
	now     time.Time
}

func (r *request) id() string { return r.params[0] }

type handlerFunc func(s *Sim, r *request) (int, any, *apiError)

type route struct {
	method  string
	pattern []string // "*" matches one segment
	handle  handlerFunc
}

var routes []route

func init() {
	add := func(method, path string, h handlerFunc) {
		routes = append(routes, route{method: method, pattern: strings.Split(strings.Trim(path, "/"), "/"), handle: h})
	}
	add("GET", "/creditors", (*Sim).listCreditors)
	add("GET", "/creditors/*", (*Sim).getCreditor)

	add("POST", "/customers", (*Sim).createCustomer)
	add("GET", "/customers", (*Sim).listCustomers)
	add("GET", "/customers/*", (*Sim).getCustomer)
	add("PUT", "/customers/*", (*Sim).updateCustomer)

	add("POST", "/customer_bank_accounts", (*Sim).createBankAccount)
	add("GET", "/customer_bank_accounts", (*Sim).listBankAccounts)
	add("GET", "/customer_bank_accounts/*", (*Sim).getBankAccount)
	add("PUT", "/customer_bank_accounts/*", (*Sim).updateBankAccount)
	add("POST", "/customer_bank_accounts/*/actions/disable", (*Sim).disableBankAccount)

	add("POST", "/mandates", (*Sim).createMandate)
	add("GET", "/mandates", (*Sim).listMandates)
	add("GET", "/mandates/*", (*Sim).getMandate)
	add("PUT", "/mandates/*", (*Sim).updateMandate)
	add("POST", "/mandates/*/actions/cancel", (*Sim).cancelMandate)
	add("POST", "/mandates/*/actions/reinstate", (*Sim).reinstateMandate)

	add("POST", "/payments", (*Sim).createPayment)
	add("GET", "/payments", (*Sim).listPayments)
	add("GET", "/payments/*", (*Sim).getPayment)
	add("PUT", "/payments/*", (*Sim).updatePayment)
	add("POST", "/payments/*/actions/cancel", (*Sim).cancelPayment)
	add("POST", "/payments/*/actions/retry", (*Sim).retryPayment)

	add("POST", "/refunds", (*Sim).createRefund)
	add("GET", "/refunds", (*Sim).listRefunds)
	add("GET", "/refunds/*", (*Sim).getRefund)
	add("PUT", "/refunds/*", (*Sim).updateRefund)

	add("POST", "/subscriptions", (*Sim).createSubscription)
	add("GET", "/subscriptions", (*Sim).listSubscriptions)
	add("GET", "/subscriptions/*", (*Sim).getSubscription)
	add("PUT", "/subscriptions/*", (*Sim).updateSubscription)
	add("POST", "/subscriptions/*/actions/cancel", (*Sim).cancelSubscription)
	add("POST", "/subscriptions/*/actions/pause", (*Sim).pauseSubscription)
	add("POST", "/subscriptions/*/actions/resume", (*Sim).resumeSubscription)

	add("GET", "/events", (*Sim).listEvents)
	add("GET", "/events/*", (*Sim).getEvent)

	add("POST", "/billing_requests", (*Sim).createBillingRequest)
	add("GET", "/billing_requests", (*Sim).listBillingRequests)
	add("GET", "/billing_requests/*", (*Sim).getBillingRequest)
	add("POST", "/billing_requests/*/actions/notify", (*Sim).notifyBillingRequest)
	add("POST", "/billing_requests/*/actions/fulfil", (*Sim).fulfilBillingRequest)
	add("POST", "/billing_requests/*/actions/cancel", (*Sim).cancelBillingRequest)
	add("POST", "/billing_request_flows", (*Sim).createFlow)

	add("POST", "/scenario_simulators/*/actions/run", (*Sim).runScenarioSimulator)

	add("GET", "/payouts", (*Sim).listPayouts)
	add("GET", "/payouts/*", (*Sim).getPayout)
	add("PUT", "/payouts/*", (*Sim).updatePayout)
	add("GET", "/payout_items", (*Sim).listPayoutItems)
}

// match finds the route for method and path. If the path exists for other
// methods only, methodKnown is false and pathKnown true.
func match(method, path string) (h handlerFunc, params []string, pathKnown bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for _, rt := range routes {
		if len(rt.pattern) != len(segs) {
			continue
		}
		var ps []string
		ok := true
		for i, p := range rt.pattern {
			switch {
			case p == "*" && segs[i] != "":
				ps = append(ps, segs[i])
			case p != segs[i]:
				ok = false
			}
			if !ok {
				break
			}
		}
		if !ok {
			continue
		}
		pathKnown = true
		if rt.method == method {
			return rt.handle, ps, true
		}
	}
	return nil, nil, pathKnown
}

// response is a fully built reply, written after s.mu is released so that
// a slow client never holds up the simulator.
type response struct {
	status int
	header http.Header
	body   []byte
}

// ServeHTTP serves the GoCardless API and, under /_sim/, the control API.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, controlPrefix) {
		s.serveControl(w, r)
		return
	}
	s.mu.Lock()
	latency := s.faults.Latency
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return // the client went away
	}
	resp := s.handleAPI(r, body)
	for k, v := range resp.header {
		w.Header()[k] = v
	}
	w.Header().Set(headerContentType, contentTypeJSON)
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
	s.kick()
}

func (s *Sim) handleAPI(r *http.Request, body []byte) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	requestID := s.newRequestID()
	header := http.Header{}
	header.Set(headerRequestID, requestID)
	reply := func(status int, payload any, aerr *apiError) response {
		if aerr != nil {
			for k, v := range aerr.header {
				header[k] = v
			}
			status, payload = aerr.status, aerr.body(requestID)
		}
		b, err := json.Marshal(payload)
		if err != nil {
			s.log.Error("gcsim: encoding response", "err", err)
			status, b = http.StatusInternalServerError, mustJSON(internalError().body(requestID))
		}
		return response{status: status, header: header, body: b}
	}

	token, aerr := s.authenticate(r)
	if aerr != nil {
		return reply(0, nil, aerr)
	}
	wallNow := s.wall()
	rate := s.limiter.take(token, wallNow)
	rate.setHeaders(header)
	if !rate.ok {
		header.Set("Retry-After", rate.retryAfter(wallNow))
		return reply(0, nil, rateLimited(nil))
	}
	if s.fire(&s.faults.RateLimitNext, 0) {
		wait := s.faults.RateLimitRetryAfter
		if wait <= 0 {
			wait = time.Second
		}
		header.Set("RateLimit-Remaining", "0")
		header.Set("RateLimit-Reset", ceilSecond(wallNow.Add(wait)).UTC().Format(http.TimeFormat))
		header.Set("Retry-After", formatSeconds(wait))
		return reply(0, nil, rateLimited(nil))
	}
	failLate := false
	if s.fire(&s.faults.ServerErrorNext, s.faults.ServerErrorRate) {
		if !s.faults.ServerErrorAfterCommit {
			return reply(0, nil, internalError())
		}
		failLate = true
	}

	now := s.clock.Now()
	s.runDue(now)

	switch v := r.Header.Get(headerVersion); {
	case v == "":
		return reply(0, nil, usageError(http.StatusBadRequest, "missing_version_header",
			"GoCardless-Version header is required"))
	case v != APIVersion:
		return reply(0, nil, usageError(http.StatusBadRequest, "version_not_found",
			"GoCardless-Version "+v+" is not a known API version"))
	}
	h, params, pathKnown := match(r.Method, r.URL.Path)
	if h == nil {
		if pathKnown {
			return reply(0, nil, usageError(http.StatusMethodNotAllowed, "method_not_allowed",
				"Method "+r.Method+" is not allowed on "+r.URL.Path))
		}
		return reply(0, nil, usageError(http.StatusNotFound, "path_not_found", "Path not found"))
	}
	if len(body) > maxBodyBytes {
		return reply(0, nil, usageError(http.StatusRequestEntityTooLarge, "request_entity_too_large",
			"Request body is too large"))
	}
	if len(bytes.TrimSpace(body)) > 0 && !jsonContentType(r.Header.Get(headerContentType)) {
		return reply(0, nil, usageError(http.StatusUnsupportedMediaType, "invalid_content_type",
			"When including a JSON body with a request you must also include a Content-Type header, set to application/json or application/vnd.api+json"))
	}
	key := r.Header.Get(headerIdempotency)
	if len(key) > maxIdempotencyKey {
		return reply(0, nil, usageError(http.StatusBadRequest, "idempotency_key_too_long",
			"Idempotency-Key must be at most 128 characters"))
	}
	req := &request{method: r.Method, params: params, query: r.URL.Query(), body: body, token: token, idemKey: key, now: now}
	status, payload, aerr := h(s, req)
	if failLate {
		return reply(0, nil, internalError())
	}
	return reply(status, payload, aerr)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func formatSeconds(d time.Duration) string {
	return strconv.FormatInt(ceilSeconds(d), 10)
}

func jsonContentType(v string) bool {
	mt, _, err := mime.ParseMediaType(v)
	return err == nil && (mt == contentTypeJSON || mt == contentTypeJSONAPI)
}

// authenticate checks the bearer token and returns it.
func (s *Sim) authenticate(r *http.Request) (string, *apiError) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", usageError(http.StatusUnauthorized, "missing_authorization_header",
			"Authorization header is missing")
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", usageError(http.StatusUnauthorized, "invalid_authorization_header",
			"Authorization header must be of the form 'Bearer <access token>'")
	}
	active, known := s.tokens[token]
	switch {
	case !known:
		return "", usageError(http.StatusUnauthorized, "access_token_not_found",
			"No access token with the ID specified was found")
	case !active:
		return "", usageError(http.StatusUnauthorized, "access_token_not_active",
			"The access token you are using has been disabled")
	}
	return token, nil
}

// decodeEnvelope unmarshals the body's `resource` member into dst. Body
// shape problems are invalid_api_usage (400); a member of the wrong JSON
// type is a validation failure on that field (422).
func decodeEnvelope(r *request, resource string, dst any) *apiError {
	raw, aerr := envelopeMember(r.body, resource, true)
	if aerr != nil {
		return aerr
	}
	return decodeInto(raw, resource, dst)
}

func envelopeMember(body []byte, member string, required bool) (json.RawMessage, *apiError) {
	if len(bytes.TrimSpace(body)) == 0 {
		if !required {
			return nil, nil
		}
		return nil, documentError("The request body must contain a '" + member + "' object")
	}
	if !json.Valid(body) {
		return nil, usageError(http.StatusBadRequest, "bad_request", "The request body is not valid JSON")
	}
	var root map[string]json.RawMessage
	if err := json.Unmarshal(body, &root); err != nil {
		return nil, documentError("Root element must be an object.")
	}
	raw, ok := root[member]
	if !ok {
		if !required {
			return nil, nil
		}
		return nil, documentError("The request body must contain a '" + member + "' object")
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return nil, documentError("'" + member + "' must be an object")
	}
	return raw, nil
}

func documentError(message string) *apiError {
	e := usageError(http.StatusBadRequest, "invalid_document_structure", "Invalid document structure")
	e.errors[0].Message = message
	return e
}

func decodeInto(raw json.RawMessage, resource string, dst any) *apiError {
	err := json.Unmarshal(raw, dst)
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te):
		field := te.Field
		if i := strings.Index(field, "."); i >= 0 && strings.HasPrefix(field, "links.") {
			field = "links[" + field[i+1:] + "]"
		}
		fe := fieldErrors{resource: resource}
		fe.add(field, "is invalid (expected "+jsonKind(te.Type.Kind().String())+")")
		return fe.err()
	default:
		return usageError(http.StatusBadRequest, "bad_request", "The request body could not be read")
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64", "int32":
		return "an integer"
	case "map", "struct":
		return "an object"
	}
	return "a " + goKind
}

// actionData is the optional {"data": {...}} body of an action.
type actionData struct {
	Metadata    json.RawMessage `json:"metadata"`
	ChargeDate  *string         `json:"charge_date"`
	PauseCycles *int            `json:"pause_cycles"`
}

func decodeAction(r *request, resource string) (actionData, *apiError) {
	var d actionData
	raw, aerr := envelopeMember(r.body, "data", false)
	if aerr != nil || raw == nil {
		return d, aerr
	}
	return d, decodeInto(raw, resource, &d)
}

// action opens the handler of POST /<resources>/{id}/actions/<name>: it
// finds the record the path names in t (an unknown id is not found
// whatever the body), decodes the optional data and
// its metadata, and lets check add its own fields' errors, so that every
// invalid field is reported at once. What it returns is only to be used
// when aerr is nil.
func action[T any](t *table[T], r *request, check func(actionData, *fieldErrors)) (rec *T, data actionData, metadata map[string]string, aerr *apiError) {
	rec, ok := t.get(r.id())
	if !ok {
		return nil, data, nil, notFound()
	}
	if data, aerr = decodeAction(r, "data"); aerr != nil {
		return nil, data, nil, aerr
	}
	fe := fieldErrors{resource: "data"}
	metadata = parseMetadata(data.Metadata, &fe)
	if check != nil {
		check(data, &fe)
	}
	return rec, data, metadata, fe.err()
}

func envelope(resource string, v any) map[string]any {
	return map[string]any{resource: v}
}
