package gocardless

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MaxLimit is the largest page GoCardless serves.
const MaxLimit = 500

// Page is one page of a list: the items and the cursors to the pages
// around it. After is empty on the last page.
type Page[T any] struct {
	Items  []T
	Before string
	After  string
	Limit  int
}

// ListParams are the paging and creation-time filters every list takes.
type ListParams struct {
	Limit     int    // 1..500; 0 means GoCardless's default (50)
	After     string // cursor: the page after this id
	Before    string // cursor: the page before this id
	CreatedAt TimeRange
}

// TimeRange filters on a timestamp; zero bounds are not sent.
type TimeRange struct {
	GT, GTE, LT, LTE time.Time
}

func (p ListParams) encode(q url.Values) error {
	if p.Limit < 0 || p.Limit > MaxLimit {
		return fmt.Errorf("limit %d outside 1..%d", p.Limit, MaxLimit)
	}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.After != "" && p.Before != "" {
		return errors.New("after and before are exclusive")
	}
	set(q, "after", p.After)
	set(q, "before", p.Before)
	p.CreatedAt.encode(q, "created_at")
	return nil
}

// timeFormat is how GoCardless writes timestamps.
const timeFormat = "2006-01-02T15:04:05.000Z"

func (r TimeRange) encode(q url.Values, name string) {
	for _, b := range []struct {
		op string
		t  time.Time
	}{{"gt", r.GT}, {"gte", r.GTE}, {"lt", r.LT}, {"lte", r.LTE}} {
		if !b.t.IsZero() {
			q.Set(name+"["+b.op+"]", b.t.UTC().Format(timeFormat))
		}
	}
}

// DateRange filters on a date (YYYY-MM-DD); empty bounds are not sent.
type DateRange struct {
	GT, GTE, LT, LTE string
}

func (r DateRange) encode(q url.Values, name string) {
	set(q, name+"[gt]", r.GT)
	set(q, name+"[gte]", r.GTE)
	set(q, name+"[lt]", r.LT)
	set(q, name+"[lte]", r.LTE)
}

func set(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

// resource names an endpoint: the path segment, which is also the key of
// the JSON envelope.
type resource string

const (
	creditors            resource = "creditors"
	customers            resource = "customers"
	customerBankAccounts resource = "customer_bank_accounts"
	mandates             resource = "mandates"
	payments             resource = "payments"
	refunds              resource = "refunds"
	subscriptions        resource = "subscriptions"
	events               resource = "events"
	payouts              resource = "payouts"
	payoutItems          resource = "payout_items"
	billingRequests      resource = "billing_requests"
	billingRequestFlows  resource = "billing_request_flows"
)

func (r resource) path(id string) string {
	if id == "" {
		return "/" + string(r)
	}
	return "/" + string(r) + "/" + url.PathEscape(id)
}

// route is the path template of r's resources, for span names and logs.
func (r resource) route() string { return "/" + string(r) + "/{id}" }

func checkID(id string) error {
	if strings.TrimSpace(id) == "" {
		return errors.New("gocardless: empty resource id")
	}
	return nil
}

func checkKey(key string) error {
	if strings.TrimSpace(key) == "" {
		return ErrIdempotencyKey
	}
	return nil
}

// envelope wraps v under the resource's name, as GoCardless wants bodies.
func envelope(r resource, v any) ([]byte, error) {
	b, err := json.Marshal(map[string]any{string(r): v})
	if err != nil {
		return nil, fmt.Errorf("gocardless: encode %s: %w", r, err)
	}
	return b, nil
}

// unwrap decodes the resource's envelope of an answer into v.
func unwrap(r resource, body []byte, v any) error {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("gocardless: decode %s: %w", r, err)
	}
	inner, ok := env[string(r)]
	if !ok {
		return fmt.Errorf("gocardless: decode %s: answer has no %q", r, r)
	}
	if err := json.Unmarshal(inner, v); err != nil {
		return fmt.Errorf("gocardless: decode %s: %w", r, err)
	}
	return nil
}

func get[T any](ctx context.Context, c *Client, r resource, id string) (*T, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	body, err := c.do(ctx, request{method: http.MethodGet, path: r.path(id), route: r.route()})
	if err != nil {
		return nil, err
	}
	v := new(T)
	if err := unwrap(r, body, v); err != nil {
		return nil, err
	}
	return v, nil
}

// listMeta is the meta object of a list answer.
type listMeta struct {
	Cursors struct {
		Before *string `json:"before"`
		After  *string `json:"after"`
	} `json:"cursors"`
	Limit int `json:"limit"`
}

func list[T any](ctx context.Context, c *Client, r resource, q url.Values) (*Page[T], json.RawMessage, error) {
	body, err := c.do(ctx, request{method: http.MethodGet, path: r.path(""), route: r.path(""), query: q})
	if err != nil {
		return nil, nil, err
	}
	var w struct {
		Meta   listMeta        `json:"meta"`
		Linked json.RawMessage `json:"linked"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, nil, fmt.Errorf("gocardless: decode %s page: %w", r, err)
	}
	p := &Page[T]{Limit: w.Meta.Limit}
	if err := unwrap(r, body, &p.Items); err != nil {
		return nil, nil, err
	}
	if w.Meta.Cursors.After != nil {
		p.After = *w.Meta.Cursors.After
	}
	if w.Meta.Cursors.Before != nil {
		p.Before = *w.Meta.Cursors.Before
	}
	return p, w.Linked, nil
}

// create posts a new resource. If the idempotency key was used before,
// GoCardless answers 409 idempotent_creation_conflict naming the resource
// created then; that resource is fetched and returned with existed true.
func create[T any](ctx context.Context, c *Client, r resource, key string, params any) (v *T, existed bool, err error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	b, err := envelope(r, params)
	if err != nil {
		return nil, false, err
	}
	body, err := c.do(ctx, request{method: http.MethodPost, path: r.path(""), route: r.path(""), key: key, body: b})
	if id, ok := conflicting(err); ok {
		v, err := get[T](ctx, c, r, id)
		if err != nil {
			return nil, false, fmt.Errorf("gocardless: fetch %s %s created earlier with this idempotency key: %w", r, id, err)
		}
		return v, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	v = new(T)
	if err := unwrap(r, body, v); err != nil {
		return nil, false, err
	}
	return v, false, nil
}

// conflicting returns the resource an idempotency conflict names.
func conflicting(err error) (string, bool) {
	var e *APIError
	if !errors.As(err, &e) || e.Code != http.StatusConflict {
		return "", false
	}
	d, ok := e.reason(ReasonIdempotentCreationConflict)
	if !ok || d.Links["conflicting_resource_id"] == "" {
		return "", false
	}
	return d.Links["conflicting_resource_id"], true
}

// action posts /{resource}/{id}/actions/{name} with data as the body's
// "data" and returns the resource as it is afterwards.
//
// GoCardless does not replay actions by idempotency key: repeating one
// that took effect is refused as invalid_state (cancellation_failed, say).
// So when an attempt whose outcome was unknown (5xx, lost answer) is
// followed by such a refusal, the resource is fetched, and if done says
// the action's effect is there, that counts as the action succeeding.
func action[T any](ctx context.Context, c *Client, r resource, id, name, key string, data any, done func(*T) bool) (*T, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	b, err := json.Marshal(map[string]any{"data": data})
	if err != nil {
		return nil, fmt.Errorf("gocardless: encode %s %s: %w", r, name, err)
	}
	body, unsure, err := c.doUnsure(ctx, request{
		method: http.MethodPost,
		path:   r.path(id) + "/actions/" + name,
		route:  r.route() + "/actions/" + name,
		key:    key,
		body:   b,
	})
	if unsure && IsInvalidState(err) {
		v, gerr := get[T](ctx, c, r, id)
		if gerr == nil && done(v) {
			return v, nil
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	v := new(T)
	if err := unwrap(r, body, v); err != nil {
		return nil, err
	}
	return v, nil
}

func update[T any](ctx context.Context, c *Client, r resource, id string, params any) (*T, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	b, err := envelope(r, params)
	if err != nil {
		return nil, err
	}
	body, err := c.do(ctx, request{method: http.MethodPut, path: r.path(id), route: r.route(), body: b})
	if err != nil {
		return nil, err
	}
	v := new(T)
	if err := unwrap(r, body, v); err != nil {
		return nil, err
	}
	return v, nil
}
