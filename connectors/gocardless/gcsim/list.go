package gcsim

import (
	"net/url"
	"strconv"
	"time"
)

// record is a stored resource, as paging sees it.
type record interface {
	key() string
	seqNo() uint64
}

func (c *Creditor) key() string              { return c.ID }
func (c *Creditor) seqNo() uint64            { return c.seq }
func (c *Customer) key() string              { return c.ID }
func (c *Customer) seqNo() uint64            { return c.seq }
func (b *CustomerBankAccount) key() string   { return b.ID }
func (b *CustomerBankAccount) seqNo() uint64 { return b.seq }
func (m *Mandate) key() string               { return m.ID }
func (m *Mandate) seqNo() uint64             { return m.seq }
func (p *Payment) key() string               { return p.ID }
func (p *Payment) seqNo() uint64             { return p.seq }
func (r *Refund) key() string                { return r.ID }
func (r *Refund) seqNo() uint64              { return r.seq }
func (s *Subscription) key() string          { return s.ID }
func (s *Subscription) seqNo() uint64        { return s.seq }
func (p *Payout) key() string                { return p.ID }
func (p *Payout) seqNo() uint64              { return p.seq }
func (e *Event) key() string                 { return e.ID }
func (e *Event) seqNo() uint64               { return e.seq }

// Paging limits.
const (
	defaultLimit = 50
	maxLimit     = 500
)

// listMeta is the meta member of a list response.
type listMeta struct {
	Cursors listCursors `json:"cursors"`
	Limit   int         `json:"limit"`
}

type listCursors struct {
	Before *string `json:"before"`
	After  *string `json:"after"`
}

// paginate returns one page of items (which are in creation order), newest
// first as GoCardless lists are. `after=X` gives the items older than X,
// `before=X` the items newer than X nearest to it; cursors.after is the
// last item's id when older items remain, cursors.before the first item's
// id when newer ones exist. cursor resolves a cursor id to its creation
// sequence.
func paginate[T record](items []T, q url.Values, cursor func(id string) (uint64, bool)) ([]T, listMeta, *apiError) {
	meta := listMeta{Limit: defaultLimit}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return nil, meta, invalidFilters("limit must be an integer between 1 and 500")
		}
		meta.Limit = n
	}
	after, before := q.Get("after"), q.Get("before")
	if after != "" && before != "" {
		return nil, meta, invalidFilters("after and before cannot be used together")
	}
	var page []T
	switch {
	case after != "":
		c, ok := cursor(after)
		if !ok {
			return nil, meta, invalidFilters("after is not a valid cursor")
		}
		for i := len(items) - 1; i >= 0 && len(page) < meta.Limit; i-- {
			if items[i].seqNo() < c {
				page = append(page, items[i])
			}
		}
	case before != "":
		c, ok := cursor(before)
		if !ok {
			return nil, meta, invalidFilters("before is not a valid cursor")
		}
		// The newer items nearest to the cursor, still newest first.
		var nearest []T
		for i := 0; i < len(items) && len(nearest) < meta.Limit; i++ {
			if items[i].seqNo() > c {
				nearest = append(nearest, items[i])
			}
		}
		for i := len(nearest) - 1; i >= 0; i-- {
			page = append(page, nearest[i])
		}
	default:
		for i := len(items) - 1; i >= 0 && len(page) < meta.Limit; i-- {
			page = append(page, items[i])
		}
	}
	if len(page) > 0 {
		first, last := page[0].seqNo(), page[len(page)-1].seqNo()
		for _, it := range items {
			if it.seqNo() < last {
				id := page[len(page)-1].key()
				meta.Cursors.After = &id
				break
			}
		}
		for _, it := range items {
			if it.seqNo() > first {
				id := page[0].key()
				meta.Cursors.Before = &id
				break
			}
		}
	}
	return page, meta, nil
}

// createdFilter parses created_at[gt|gte|lt|lte] into a predicate.
func createdFilter(q url.Values) (func(time.Time) bool, *apiError) {
	type bound struct {
		op string
		t  time.Time
	}
	var bounds []bound
	for _, op := range []string{"gt", "gte", "lt", "lte"} {
		v := q.Get("created_at[" + op + "]")
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, invalidFilters("created_at[" + op + "] must be an ISO 8601 timestamp")
		}
		bounds = append(bounds, bound{op, t})
	}
	return func(c time.Time) bool {
		for _, b := range bounds {
			switch b.op {
			case "gt":
				if !c.After(b.t) {
					return false
				}
			case "gte":
				if c.Before(b.t) {
					return false
				}
			case "lt":
				if !c.Before(b.t) {
					return false
				}
			case "lte":
				if c.After(b.t) {
					return false
				}
			}
		}
		return true
	}, nil
}

// list filters items with keep and created_at bounds (when created is
// given), pages them and renders each page item with view.
func list[T record, V any](resource string, items []T, q url.Values, cursor func(string) (uint64, bool),
	created func(T) time.Time, keep func(T) bool, view func(T) V) (int, any, *apiError) {
	inRange := func(time.Time) bool { return true }
	if created != nil {
		var aerr *apiError
		if inRange, aerr = createdFilter(q); aerr != nil {
			return 0, nil, aerr
		}
	}
	var filtered []T
	for _, it := range items {
		if (keep == nil || keep(it)) && (created == nil || inRange(created(it))) {
			filtered = append(filtered, it)
		}
	}
	page, meta, aerr := paginate(filtered, q, cursor)
	if aerr != nil {
		return 0, nil, aerr
	}
	out := make([]V, 0, len(page))
	for _, it := range page {
		out = append(out, view(it))
	}
	return 200, map[string]any{resource: out, "meta": meta}, nil
}

// eq returns a filter that keeps items whose field equals the query
// parameter, if it is given.
func eq(q url.Values, param string) func(string) bool {
	want := q.Get(param)
	return func(v string) bool { return want == "" || v == want }
}
