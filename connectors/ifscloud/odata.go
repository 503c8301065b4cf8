package ifscloud

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Literals and URLs in the OData syntax IFS accepts.

func stringLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func timeLit(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

var numericKey = regexp.MustCompile(`^-?[0-9]+$`)

func keyLit(key string, numeric bool) string {
	if numeric {
		return key
	}
	return stringLit(key)
}

// escapeQuery escapes a query value with %20 for spaces: "+" is a space
// only in form encoding, which OData servers need not apply to URLs.
func escapeQuery(v string) string { return strings.ReplaceAll(url.QueryEscape(v), "+", "%20") }

// withQuery appends OData system query options in the order given.
func withQuery(base string, opts ...[2]string) string {
	var b strings.Builder
	b.WriteString(base)
	sep := "?"
	for _, o := range opts {
		if o[1] == "" {
			continue
		}
		b.WriteString(sep + o[0] + "=" + escapeQuery(o[1]))
		sep = "&"
	}
	return b.String()
}

func (c *Client) setURL(projection, set string) string {
	return c.s.BaseURL + c.s.APIPath + "/" + projection + ".svc/" + set
}

// row is one entity as IFS sent it, each field's JSON kept verbatim.
type row map[string]json.RawMessage

const etagField = "@odata.etag"

type page struct {
	Value    []row  `json:"value"`
	NextLink string `json:"@odata.nextLink"`
}

// text returns a field as text: a string as is, a number as its exact JSON
// text (never through a float), a boolean as true/false; absent, null or an
// unnamed field is "". The page was decoded as a whole, so every raw value
// here is well-formed JSON.
func (r row) text(field string) (string, error) {
	if field == "" {
		return "", nil
	}
	raw := r[field]
	if len(raw) == 0 {
		return "", nil
	}
	switch raw[0] {
	case '"':
		if bytes.IndexByte(raw, '\\') < 0 {
			return string(raw[1 : len(raw)-1]), nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("field %s: %w", field, err)
		}
		return s, nil
	case 'n':
		return "", nil
	case 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), nil
	}
	return "", fmt.Errorf("field %s: expected a value, got %s", field, raw)
}

var decimalText = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// decimal returns a field that must hold a decimal number, exactly as IFS
// wrote it (a string under IEEE754Compatible, else the JSON number's text).
func (r row) decimal(field string, required bool) (string, error) {
	s, err := r.text(field)
	if err != nil {
		return "", err
	}
	if s == "" {
		if required {
			return "", fmt.Errorf("field %s is missing", field)
		}
		return "", nil
	}
	if !decimalText.MatchString(s) {
		return "", fmt.Errorf("field %s: %q is not a plain decimal number", field, s)
	}
	return s, nil
}

// date returns a field holding an Edm.Date (or the date of an
// Edm.DateTimeOffset) as YYYY-MM-DD.
func (r row) date(field string) (string, error) {
	s, err := r.text(field)
	if err != nil || s == "" {
		return "", err
	}
	if len(s) > 10 && s[10] == 'T' {
		s = s[:10]
	}
	if _, err := time.Parse(time.DateOnly, s); err != nil {
		return "", fmt.Errorf("field %s: %q is not a date", field, s)
	}
	return s, nil
}

// instant returns a field holding an Edm.DateTimeOffset.
func (r row) instant(field string) (time.Time, error) {
	s, err := r.text(field)
	if err != nil {
		return time.Time{}, err
	}
	if s == "" {
		return time.Time{}, fmt.Errorf("field %s is missing", field)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("field %s: %q is not a date and time", field, s)
	}
	return t.UTC(), nil
}

func (r row) etag() string {
	s, _ := r.text(etagField)
	return s
}

// selectList is the $select of an entity set: every named field and the
// extras, sorted, without duplicates.
func selectList(es EntitySettings) string {
	var names []string
	for _, n := range es.Fields {
		if n != "" {
			names = append(names, n)
		}
	}
	names = append(names, es.Extra...)
	slices.Sort(names)
	return strings.Join(slices.Compact(names), ",")
}

// get reads a URL and decodes the answer into v.
func (c *Client) get(ctx context.Context, u, what string, v any) (http.Header, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, url: u, what: what})
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(resp.body, v); err != nil {
		return nil, fmt.Errorf("ifs %s: decode answer: %w", what, err)
	}
	return resp.header, nil
}

// query reads every row matching filter, following nextLinks. It is for
// small results (postings of one invoice); polling uses list.
func (c *Client) query(ctx context.Context, projection, set, filter, sel string) ([]row, error) {
	u := withQuery(c.setURL(projection, set), [2]string{"$filter", filter}, [2]string{"$select", sel})
	var rows []row
	for u != "" {
		var p page
		if _, err := c.get(ctx, u, "query "+set, &p); err != nil {
			return nil, err
		}
		rows = append(rows, p.Value...)
		if p.NextLink == "" {
			break
		}
		next, err := c.resolve(p.NextLink)
		if err != nil {
			return nil, err
		}
		u = next
	}
	return rows, nil
}

// entity reads one entity by its key predicate, e.g. (Company='10',InvoiceId=7).
func (c *Client) entity(ctx context.Context, projection, set, predicate, sel string) (row, error) {
	u := withQuery(c.setURL(projection, set)+predicate, [2]string{"$select", sel})
	var r row
	header, err := c.get(ctx, u, "read "+set+predicate, &r)
	if err != nil {
		return nil, err
	}
	if r.etag() == "" && header.Get("ETag") != "" {
		r[etagField], _ = json.Marshal(header.Get("ETag"))
	}
	return r, nil
}

// invoke calls a bound action on an entity with If-Match: etag.
func (c *Client) invoke(ctx context.Context, projection, set, predicate, action, etag string, params any) (row, error) {
	body, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("ifs %s: encode parameters: %w", action, err)
	}
	u := c.setURL(projection, set) + predicate + "/IfsApp." + projection + "." + action
	resp, err := c.do(ctx, request{method: http.MethodPost, url: u, ifMatch: etag, body: body, what: action + " on " + set + predicate})
	if err != nil {
		return nil, err
	}
	r := row{}
	if len(bytes.TrimSpace(resp.body)) > 0 {
		if err := json.Unmarshal(resp.body, &r); err != nil {
			return nil, fmt.Errorf("ifs %s: decode answer: %w", action, err)
		}
	}
	return r, nil
}

// create POSTs a new entity to a set (OData create) and returns it as IFS
// answered, with its ETag.
func (c *Client) create(ctx context.Context, projection, set string, props any) (row, error) {
	body, err := json.Marshal(props)
	if err != nil {
		return nil, fmt.Errorf("ifs create %s: encode: %w", set, err)
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, url: c.setURL(projection, set), body: body, what: "create " + set, once: true})
	if err != nil {
		return nil, err
	}
	r := row{}
	if err := json.Unmarshal(resp.body, &r); err != nil {
		return nil, fmt.Errorf("ifs create %s: decode answer: %w", set, err)
	}
	if r.etag() == "" && resp.header.Get("ETag") != "" {
		r[etagField], _ = json.Marshal(resp.header.Get("ETag"))
	}
	return r, nil
}
