package gcsim

import (
	"slices"
	"strings"
	"time"
)

// eventResourceFilters are the query parameters that filter events by the
// resource they link to; GoCardless allows one at a time.
var eventResourceFilters = []string{"payment", "mandate", "refund", "subscription", "payout", "customer",
	"creditor", "parent_event", "billing_request"}

// eventResourceTypes are the resource types events are recorded for.
var eventResourceTypes = []string{"billing_requests", "mandates", "payments", "payouts", "refunds", "subscriptions"}

func (s *Sim) listEvents(r *request) (int, any, *apiError) {
	q := r.query
	var idParam, idValue string
	for _, p := range eventResourceFilters {
		if v := q.Get(p); v != "" {
			if idParam != "" {
				return 0, nil, invalidFilters("Only one of " + strings.Join(eventResourceFilters, ", ") + " may be given")
			}
			idParam, idValue = p, v
		}
	}
	resourceType := q.Get("resource_type")
	if resourceType != "" && idParam != "" && idParam != "customer" && idParam != "parent_event" {
		// gocardless-pro-java EventService.java, resource_type: "Cannot
		// be used together with the billing_request, creditor, export,
		// instalment_schedule, mandate, payer_authorisation, payment,
		// payout, refund, scheme_identifier, subscription, outbound_payment
		// or payment_account_transaction parameters."
		return 0, nil, invalidFilters("resource_type cannot be used together with the " + idParam + " filter")
	}
	if resourceType != "" && !slices.Contains(eventResourceTypes, resourceType) {
		return 0, nil, invalidFilters("resource_type must be one of " + strings.Join(eventResourceTypes, ", "))
	}
	include := q.Get("include")
	if include != "" && (resourceType == "" || include+"s" != resourceType) {
		return 0, nil, invalidFilters("include requires resource_type, and must be its singular (e.g. include=payment with resource_type=payments)")
	}
	action := eq(q, "action")
	status, body, aerr := list("events", s.events.list, q,
		func(id string) (uint64, bool) { return seqOf(&s.events, id) },
		func(e *Event) time.Time { return e.created },
		func(e *Event) bool {
			return action(e.Action) && (resourceType == "" || e.ResourceType == resourceType) &&
				(idParam == "" || e.Links[idParam] == idValue)
		},
		func(e *Event) Event { return e.clone() })
	if aerr != nil || include == "" {
		return status, body, aerr
	}
	out := body.(map[string]any)
	out["linked"] = map[string]any{resourceType: s.linked(include, out["events"].([]Event), r.now)}
	return status, out, nil
}

// linked returns, once each in first-seen order, the resources the events
// link to under key.
func (s *Sim) linked(key string, events []Event, now time.Time) []any {
	seen := map[string]bool{}
	out := []any{}
	for _, e := range events {
		id := e.Links[key]
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		var v any
		switch key {
		case "payment":
			if p, ok := s.payments.get(id); ok {
				v = p.clone()
			}
		case "mandate":
			if m, ok := s.mandates.get(id); ok {
				v = s.viewMandate(m, now)
			}
		case "refund":
			if rf, ok := s.refunds.get(id); ok {
				v = rf.clone()
			}
		case "subscription":
			if sub, ok := s.subs.get(id); ok {
				v = s.viewSubscription(sub)
			}
		case "payout":
			if po, ok := s.payouts.get(id); ok {
				v = po.clone()
			}
		case "billing_request":
			if br, ok := s.billingRequests.get(id); ok {
				v = s.viewBillingRequest(br)
			}
		}
		if v != nil {
			out = append(out, v)
		}
	}
	return out
}

func (s *Sim) getEvent(r *request) (int, any, *apiError) {
	e, ok := s.events.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	return 200, envelope("events", e.clone()), nil
}
