package ifssim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// invoke runs a bound action: the entity must exist, If-Match must name
// its current ETag (or *), and the action's own rules must hold.
func (s *Sim) invoke(r *http.Request, es *entitySet, pred, name string, ieee bool) ([]byte, *apiError) {
	key, aerr := parseKey(pred, es)
	if aerr != nil {
		return nil, aerr
	}
	rw, found := es.lookup(key)
	if !found {
		return nil, &apiError{status: http.StatusNotFound, code: "ODP_NOT_FOUND", msg: "No " + es.name + " with key " + pred}
	}
	ifMatch := r.Header.Get("If-Match")
	if ifMatch == "" {
		return nil, &apiError{status: http.StatusPreconditionRequired, code: "ODP_IF_MATCH_REQUIRED",
			msg: "Modifying " + es.name + " requires an If-Match header with the entity's ETag"}
	}
	if s.faults.raceNext > 0 && es.touch != nil {
		// Someone else changes the entity between the client's read and
		// this write.
		s.faults.raceNext--
		es.touch(key)
		rw, _ = es.lookup(key)
	}
	if ifMatch != "*" && ifMatch != rw.etag {
		return nil, &apiError{status: http.StatusPreconditionFailed, code: "ODP_PRECONDITION_FAILED",
			msg: "The record was changed by another user since it was read. Refresh and try again."}
	}
	d := json.NewDecoder(r.Body)
	d.UseNumber()
	params := map[string]any{}
	if err := d.Decode(&params); err != nil {
		return nil, badRequest("ODP_INVALID_BODY", "the action parameters are not a JSON object: %v", err)
	}
	result, aerr := es.actions[name](key, params)
	if aerr != nil {
		return nil, aerr
	}
	var b bytes.Buffer
	resultSet := s.resultSet(es)
	writeEntity(&b, result, resultSet.fields, ieee, s.context(r, resultSet))
	return b.Bytes(), nil
}

// resultSet is the set whose entities an action on es returns: the
// legacy mandate action answers with its log entry, the mixed payment
// actions with the mixed payment.
func (s *Sim) resultSet(es *entitySet) *entitySet {
	if es.name == s.cfg.CustomerSet {
		return s.sets[s.cfg.CustomerProjection+"/"+s.cfg.MandateLogSet]
	}
	return es
}

// params reads action parameters.
type params struct {
	m   map[string]any
	err *apiError
}

func (p *params) str(name string, required bool) string {
	var s string
	switch v := p.m[name].(type) {
	case nil:
	case string:
		s = strings.TrimSpace(v)
	case json.Number:
		s = v.String()
	default:
		p.fail("parameter %s must be a string", name)
	}
	if s == "" && required {
		p.fail("parameter %s is required", name)
	}
	return s
}

func (p *params) fail(format string, args ...any) {
	if p.err == nil {
		p.err = badRequest("ODP_INVALID_PARAMETER", format, args...)
	}
}

func (s *Sim) mandateReferenceUsed(company, ref string) bool {
	return slices.ContainsFunc(s.mandateLog, func(m *mandateRec) bool { return m.m.Company == company && m.m.Reference == ref })
}

// registerMandate records a mandate status on the customer. The customer
// keeps the status with the latest event time, so statuses may arrive in
// any order; every call is logged and changes the customer's ETag.
func (s *Sim) registerMandate(key map[string]value, m map[string]any) (*row, *apiError) {
	cu := s.customers[key["CustomerId"].s].cu
	p := &params{m: m}
	ref := p.str("Reference", true)
	company := p.str("Company", true)
	mandate := p.str("MandateId", true)
	status := p.str("Status", true)
	eventText := p.str("EventTime", true)
	scheme, cause, reason, desc := p.str("Scheme", false), p.str("Cause", false), p.str("ReasonCode", false), p.str("Description", false)
	if p.err != nil {
		return nil, p.err
	}
	event, err := time.Parse(time.RFC3339Nano, eventText)
	switch {
	case err != nil:
		return nil, badRequest("ODP_INVALID_PARAMETER", "EventTime %q is not a date and time", eventText)
	case !slices.Contains(mandateStatuses, status):
		return nil, badRequest("ODP_INVALID_PARAMETER", "Status %q is not one of %v", status, mandateStatuses)
	case company != cu.Company:
		return nil, dbError("ORA-20120: CustomerInfo.COMPANY: Customer %s does not belong to company %s.", cu.CustomerID, company)
	case s.mandateReferenceUsed(company, ref):
		return nil, dbError("ORA-20112: DirectDebitMandateLog.DUPLICATE_REF: Reference %s is already used in company %s.", ref, company)
	}
	applied := cu.MandateStatusTime.IsZero() || !event.Before(cu.MandateStatusTime)
	if applied {
		cu.MandateID, cu.MandateStatus, cu.MandateStatusTime = mandate, status, event.UTC()
	}
	cu.Modified = time.Time{}
	s.storeCustomer(cu)
	return s.addMandateLog(MandateLogEntry{
		Company: company, CustomerID: cu.CustomerID, Reference: ref, MandateID: mandate, Status: status,
		Scheme: scheme, EventTime: event.UTC(), Cause: cause, ReasonCode: reason, Description: desc, Applied: applied,
	}).row, nil
}

// scale is the number of decimal places of decimal text.
func scale(s string) int {
	if _, frac, ok := strings.Cut(s, "."); ok {
		return len(frac)
	}
	return 0
}
