package gocardless

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/url"
)

// EventListParams filter ListEvents and Events. At most one resource id
// (Payment, Mandate, ...) may be set, and ResourceType "Cannot be used
// together with" the billing_request, creditor, mandate, payment, payout,
// refund or subscription filters (gocardless-pro-java EventService.java);
// Include asks for the resources the events are about to be returned
// alongside (in EventPage.Linked) and needs ResourceType to match.
type EventListParams struct {
	ListParams
	Action       string
	ResourceType string // payments, mandates, refunds, subscriptions, payouts, billing_requests, ...
	Include      string // payment, mandate, refund, subscription, payout, billing_request, creditor

	BillingRequest string
	Creditor       string
	Customer       string
	Mandate        string
	ParentEvent    string
	Payment        string
	Payout         string
	Refund         string
	Subscription   string
}

func (p EventListParams) query() (url.Values, error) {
	q := url.Values{}
	if err := p.encode(q); err != nil {
		return nil, err
	}
	ids, typed := 0, ""
	for _, f := range []struct {
		k, v      string
		untypable bool // cannot go with resource_type
	}{
		{"billing_request", p.BillingRequest, true}, {"creditor", p.Creditor, true}, {"customer", p.Customer, false},
		{"mandate", p.Mandate, true}, {"parent_event", p.ParentEvent, false}, {"payment", p.Payment, true},
		{"payout", p.Payout, true}, {"refund", p.Refund, true}, {"subscription", p.Subscription, true},
	} {
		if f.v != "" {
			ids++
			q.Set(f.k, f.v)
			if f.untypable {
				typed = f.k
			}
		}
	}
	if ids > 1 {
		return nil, errors.New("at most one resource id filter")
	}
	if typed != "" && p.ResourceType != "" {
		return nil, fmt.Errorf("resource_type cannot be used together with the %s filter", typed)
	}
	if p.Include != "" && p.Include+"s" != p.ResourceType {
		return nil, fmt.Errorf("include %q needs resource_type %ss", p.Include, p.Include)
	}
	set(q, "action", p.Action)
	set(q, "resource_type", p.ResourceType)
	set(q, "include", p.Include)
	return q, nil
}

// EventPage is a page of events with the resources Include asked for.
type EventPage struct {
	Page[Event]
	Linked Linked
}

// Linked holds the resources included with a page of events.
type Linked struct {
	Creditors     []Creditor     `json:"creditors"`
	Customers     []Customer     `json:"customers"`
	Mandates      []Mandate      `json:"mandates"`
	Payments      []Payment      `json:"payments"`
	Payouts       []Payout       `json:"payouts"`
	Refunds       []Refund       `json:"refunds"`
	Subscriptions []Subscription `json:"subscriptions"`
	// BillingRequests come with Include "billing_request".
	BillingRequests []BillingRequest `json:"billing_requests"`
}

// ListEvents lists one page of events, newest first as GoCardless serves
// them.
func (c *Client) ListEvents(ctx context.Context, p EventListParams) (*EventPage, error) {
	q, err := p.query()
	if err != nil {
		return nil, fmt.Errorf("gocardless: list events: %w", err)
	}
	page, linked, err := list[Event](ctx, c, events, q)
	if err != nil {
		return nil, err
	}
	ep := &EventPage{Page: *page}
	if len(linked) > 0 {
		if err := json.Unmarshal(linked, &ep.Linked); err != nil {
			return nil, fmt.Errorf("gocardless: decode linked resources: %w", err)
		}
	}
	return ep, nil
}

// Events iterates over all events matching p, following the after cursor
// from page to page (p.After and p.Before choose where to start; p.Limit
// is the page size). It stops at the first error, which it yields. Each
// page is a call, paced and retried like any other.
func (c *Client) Events(ctx context.Context, p EventListParams) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for {
			page, err := c.ListEvents(ctx, p)
			if err != nil {
				yield(Event{}, err)
				return
			}
			for _, e := range page.Items {
				if !yield(e, nil) {
					return
				}
			}
			if page.After == "" || len(page.Items) == 0 {
				return
			}
			p.After, p.Before = page.After, ""
		}
	}
}
